// A metric's history as an interactive chart (uPlot, vendored): each run's mean, dashed
// lines one standard deviation either side where there are repeats, change points as
// vertical red lines, and a pull request's runs overlaid when the page asks for one (?pr=);
// the legend names the commit and run under the cursor, and a click opens that run. The numbers come from the page's JSON data block (the history API's).
(function () {
  const holder = document.getElementById("chart");
  const block = document.getElementById("history");
  if (!holder || !block || typeof uPlot === "undefined") return;
  const data = JSON.parse(block.textContent);
  const branch = data.points.slice().reverse(); // oldest first, as time runs
  const pull = (data.pull_request_points || []).slice().reverse();
  if (branch.length === 0 && pull.length === 0) return;
  // One time axis for both series (uPlot's data are columns): each run at its own time,
  // null where the other series has none.
  const xs = [...new Set([...branch, ...pull].map((p) => p.time))].sort((a, b) => a - b);
  const at = (list) => {
    const byTime = new Map(list.map((p) => [p.time, p]));
    return xs.map((t) => byTime.get(t) || null);
  };
  const ofBranch = at(branch);
  const ofPull = at(pull);
  const mean = ofBranch.map((p) => (p ? p.value : null));
  const low = ofBranch.map((p) => (p && p.std != null ? p.value - p.std : null));
  const high = ofBranch.map((p) => (p && p.std != null ? p.value + p.std : null));
  const overlay = ofPull.map((p) => (p ? p.value : null));
  const changes = (data.change_points || []).map((c) => c.time);
  const describe = (points) => (u, value, series, i) =>
    i == null || value == null || !points[i]
      ? "—"
      : `${value.toPrecision(6)} · ${points[i].commit.slice(0, 7)} · run #${points[i].run_id}`;
  const markChanges = (u) => {
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = "#cf222e";
    ctx.setLineDash([6, 4]);
    ctx.lineWidth = 2;
    for (const t of changes) {
      const x = Math.round(u.valToPos(t, "x", true));
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  };
  const chart = new uPlot(
    {
      width: Math.max(320, holder.clientWidth),
      height: 320,
      series: [
        {},
        {
          label: `${data.metric} on ${data.branch}`,
          stroke: "#0969da",
          width: 2,
          spanGaps: true,
          points: { show: true, size: 7 },
          value: describe(ofBranch),
        },
        { label: "− 1 sd", stroke: "#8c959f", dash: [4, 4], spanGaps: true },
        { label: "+ 1 sd", stroke: "#8c959f", dash: [4, 4], spanGaps: true },
        ...(data.pull_request
          ? [
              {
                label: `pull request #${data.pull_request}`,
                stroke: "#bc4c00",
                width: 2,
                spanGaps: true,
                points: { show: true, size: 9 },
                value: describe(ofPull),
              },
            ]
          : []),
      ],
      hooks: { draw: [markChanges] },
    },
    data.pull_request ? [xs, mean, low, high, overlay] : [xs, mean, low, high],
    holder,
  );
  chart.over.addEventListener("click", () => {
    const i = chart.cursor.idx;
    const point = i == null ? null : ofPull[i] || ofBranch[i];
    if (point) window.location.href = `/runs/${point.run_id}`;
  });
  holder.dataset.ready = String(branch.length);
  holder.dataset.overlay = String(pull.length);
})();
