// The run page's logs: ANSI colours rendered by ansi_up (vendored from npm), live lines
// from the server's Server-Sent Events put into their steps, earlier stretches fetched on
// demand, search, links to lines, and the page's parts refreshed while the run goes on.
// Without script the page is whole as served; a reload shows what is new.
import { AnsiUp } from "./vendor/ansi_up.js";

const REFRESH_MS = 10000;
const renderers = new WeakMap();

// One AnsiUp per log box keeps a colour that spans lines; its output escapes the text, so
// a line stays text whatever it holds.
function render(box) {
  let ansi = renderers.get(box);
  if (!ansi) {
    ansi = new AnsiUp();
    renderers.set(box, ansi);
  }
  for (const line of box.querySelectorAll(".line:not([data-rendered])")) {
    line.dataset.rendered = "";
    const text = line.lastChild;
    if (!text || text.nodeType !== Node.TEXT_NODE) continue;
    const html = ansi.ansi_to_html(text.data);
    if (html === text.data) continue; // nothing to style, nothing escaped
    const span = document.createElement("span");
    span.innerHTML = html;
    line.replaceChild(span, text);
  }
}

// The box of a step, made when a line comes for a step the page has not seen yet (a job
// that started after the page loaded); kept in step order.
function stepBox(section, step) {
  const found = section.querySelector(`details.step[data-step="${CSS.escape(step)}"] pre.log`);
  if (found) return found;
  const steps = section.querySelector(".steps");
  section.querySelector(".steps-empty")?.remove();
  const details = document.createElement("details");
  details.className = "step";
  details.dataset.step = step;
  details.open = true;
  const summary = document.createElement("summary");
  const name = document.createElement("span");
  name.className = "step-name";
  name.textContent = `step ${Number(step) + 1}`;
  summary.append(name);
  const box = document.createElement("pre");
  box.className = "log";
  details.append(summary, box);
  const after = [...steps.querySelectorAll("details.step")].find(
    (other) => Number(other.dataset.step) > Number(step),
  );
  steps.insertBefore(details, after || null);
  return box;
}

// Lines (the server's HTML for them) into their steps: appended, or before what is there
// for an earlier stretch.
function place(section, html, atStart) {
  const template = document.createElement("template");
  template.innerHTML = html;
  const groups = new Map();
  for (const line of template.content.querySelectorAll(".line")) {
    const step = line.dataset.step || "0";
    if (!groups.has(step)) groups.set(step, []);
    groups.get(step).push(line);
  }
  for (const [step, lines] of groups) {
    const box = stepBox(section, step);
    if (atStart) box.prepend(...lines);
    else box.append(...lines);
    render(box);
  }
  if (section.querySelector(".log-search")?.value.trim()) applySearch(section);
  return template.content.querySelector("a.earlier");
}

function textOf(line) {
  const number = line.querySelector("a.n");
  return line.textContent.slice(number ? number.textContent.length : 0);
}

function applySearch(section) {
  const input = section.querySelector(".log-search");
  const output = section.querySelector("output.matches");
  if (!input) return;
  const wanted = input.value.trim().toLowerCase();
  let count = 0;
  for (const details of section.querySelectorAll("details.step")) {
    let hits = 0;
    for (const line of details.querySelectorAll(".line")) {
      const hit = !wanted || textOf(line).toLowerCase().includes(wanted);
      line.hidden = !hit;
      if (hit) hits += 1;
    }
    // While searching, a step shows only if something in it matches.
    if (wanted) details.open = hits > 0;
    if (wanted) count += hits;
  }
  output.value = wanted ? `${count} matching line${count === 1 ? "" : "s"} (of those loaded)` : "";
}

function stream(section) {
  const url = section.dataset.stream;
  if (!url || section.source) return;
  // EventSource reconnects by itself and sends the last id it saw (Last-Event-ID).
  const source = new EventSource(url);
  section.source = source;
  source.addEventListener("lines", (event) => {
    // A reader at the bottom of the page follows the log as it grows, as a terminal
    // would; one who scrolled up to read is left where they are.
    const following = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    place(section, event.data, false);
    if (following) window.scrollTo(0, document.body.scrollHeight);
  });
  source.addEventListener("end", () => {
    source.close();
    section.source = null;
    refresh();
  });
}

function setUp(section) {
  section.querySelectorAll("pre.log").forEach(render);
  const input = section.querySelector(".log-search");
  let timer = 0;
  input?.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => applySearch(section), 150);
  });
  stream(section);
}

// "show earlier lines": the stretch before, each line into its step, and the next link.
document.addEventListener("click", async (event) => {
  const link = event.target.closest("a.earlier");
  if (!link) return;
  event.preventDefault();
  const section = link.closest("section.job");
  const answer = await fetch(link.href, { headers: { "x-labci-fragment": "1" } });
  if (!answer.ok) return;
  const next = place(section, await answer.text(), true);
  if (next) link.replaceWith(next);
  else link.remove();
});

function showLinkedLine() {
  if (!location.hash.startsWith("#L")) return;
  const line = document.getElementById(location.hash.slice(1));
  if (!line) return;
  const details = line.closest("details");
  if (details) details.open = true;
  line.scrollIntoView({ block: "center" });
}

async function fetched(query) {
  const answer = await fetch(`${location.pathname}?${query}`, { headers: { accept: "text/html" } });
  if (!answer.ok) return null;
  return new DOMParser().parseFromString(await answer.text(), "text/html");
}

// The page as the server has it now, read without log lines (a big run's refresh stays
// small): the head, statuses, verdicts and graph replaced; a job section replaced, with its
// lines, when its job has moved on and no stream is filling it (what the reader opened,
// typed or ticked is kept).
// One refresh at a time: the timer and every stream's end ask for one, and a burst (a run
// of many jobs cancelled at once) is one refresh and, if asked again meanwhile, one more.
let refreshing = null;
let again = false;
function refresh() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = refreshOnce().finally(() => {
    refreshing = null;
    if (again) {
      again = false;
      refresh();
    }
  });
  return refreshing;
}

async function refreshOnce() {
  const fresh = await fetched("lines=none");
  if (!fresh) return;
  for (const selector of ["#run-head", "table.statuses", "#verdicts", "svg.graph"]) {
    const now = document.querySelector(selector);
    const then = fresh.querySelector(selector);
    if (now && then) now.replaceWith(document.adoptNode(then));
  }
  for (const section of document.querySelectorAll("section.job")) {
    let then = fresh.getElementById(section.id);
    if (!then || !section.isConnected) continue;
    if (section.source) {
      // Still filling from its stream: only its headline and why it waits move on.
      section.querySelector("h2").replaceWith(document.adoptNode(then.querySelector("h2")));
      const waiting = then.querySelector("p.waiting");
      section.querySelector("p.waiting")?.remove();
      if (waiting) section.querySelector("h2").after(document.adoptNode(waiting));
      continue;
    }
    if (then.dataset.state === section.dataset.state && !then.dataset.stream) continue;
    const whole = await fetched(`job=${section.dataset.job}`);
    then = whole && whole.getElementById(section.id);
    if (!then || !section.isConnected || section.source) continue;
    const opened = new Set(
      [...section.querySelectorAll("details.step[open]")].map((d) => d.dataset.step),
    );
    for (const details of then.querySelectorAll("details.step")) {
      if (opened.has(details.dataset.step)) details.open = true;
    }
    then.querySelector(".ts-toggle").checked = section.querySelector(".ts-toggle").checked;
    then.querySelector(".log-search").value = section.querySelector(".log-search").value;
    const adopted = document.adoptNode(then);
    section.replaceWith(adopted);
    setUp(adopted);
    applySearch(adopted);
  }
  if (document.querySelector("#run-head")?.dataset.state === "finished") {
    clearInterval(refresher);
  }
}

document.querySelectorAll("section.job").forEach(setUp);
showLinkedLine();
window.addEventListener("hashchange", showLinkedLine);
const head = document.querySelector("#run-head");
const refresher =
  head && head.dataset.state !== "finished" ? setInterval(refresh, REFRESH_MS) : 0;
