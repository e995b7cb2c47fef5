// Log lines as a terminal shows them: ANSI colours and styles rendered by ansi_up (vendored
// from npm), for the lines the page came with and for those the live stream appends. One
// AnsiUp per log keeps a colour that spans lines; its output escapes the text, so a line
// stays text whatever it holds. Without script, lines show their escape codes raw.
import { AnsiUp } from "./vendor/ansi_up.js";

const renderers = new WeakMap();

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

function renderAll() {
  document.querySelectorAll("pre.log").forEach(render);
}

renderAll();
document.body.addEventListener("htmx:sseMessage", (event) => {
  const box = event.target.closest("pre.log") || event.target.querySelector("pre.log");
  if (box) render(box);
});
// Earlier lines swapped in at the top of a log ("show earlier").
document.body.addEventListener("htmx:afterSettle", renderAll);
