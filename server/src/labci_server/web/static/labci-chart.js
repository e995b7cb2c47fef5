// A metric's history as an interactive chart (uPlot, vendored): each run's mean, dashed
// lines one standard deviation either side where there are repeats, change points as
// vertical red lines; the legend names the commit and run under the cursor, and a click
// opens that run. The numbers come from the page's JSON data block (the history API's).
(function () {
  const holder = document.getElementById("chart");
  const block = document.getElementById("history");
  if (!holder || !block || typeof uPlot === "undefined") return;
  const data = JSON.parse(block.textContent);
  const points = data.points.slice().reverse(); // oldest first, as time runs
  if (points.length === 0) return;
  const xs = points.map((p) => p.time);
  const mean = points.map((p) => p.value);
  const low = points.map((p) => (p.std == null ? null : p.value - p.std));
  const high = points.map((p) => (p.std == null ? null : p.value + p.std));
  const changes = (data.change_points || []).map((c) => c.time);
  const describe = (u, value, series, i) =>
    i == null || value == null
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
        { label: data.metric, stroke: "#0969da", width: 2, points: { show: true, size: 7 }, value: describe },
        { label: "− 1 sd", stroke: "#8c959f", dash: [4, 4] },
        { label: "+ 1 sd", stroke: "#8c959f", dash: [4, 4] },
      ],
      hooks: { draw: [markChanges] },
    },
    [xs, mean, low, high],
    holder,
  );
  chart.over.addEventListener("click", () => {
    const i = chart.cursor.idx;
    if (i != null) window.location.href = `/runs/${points[i].run_id}`;
  });
  holder.dataset.ready = String(points.length);
})();
