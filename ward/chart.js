// A patient's observation chart (doc/ward.md): the last 72 hours in the RCP NEWS2 chart's row
// order, each cell coloured by its sub-score, and the NEWS2 trend drawn as a line.

import { ApiError, BANDS, api, clock, element, say, scored, shown, signIn } from "/ward/ward.js";

const SVG = "http://www.w3.org/2000/svg";
const id = location.pathname.split("/").pop();

// Rows in the RCP chart's order: [label, value field, parameter scored, shown for scale 2 only].
function layout(scale) {
  return [
    ["Respirations", "respiratory_rate_bpm", "respiration_rate"],
    ["SpO2 scale 1", "spo2_percent", scale === 1 ? "spo2" : null],
    ...(scale === 2 ? [["SpO2 scale 2", "spo2_percent", "spo2"]] : []),
    ["Air or oxygen", "on_oxygen", "air_or_oxygen"],
    ["Systolic BP", "systolic_mmhg", "systolic_bp"],
    ["Diastolic BP", "diastolic_mmhg", null],
    ["Pulse", "heart_rate_bpm", "pulse"],
    ["Consciousness", "consciousness", "consciousness"],
    ["Temperature", "temperature_c", "temperature"],
  ];
}

function table(chart) {
  const head = document.querySelector("#chart thead tr");
  const body = document.querySelector("#chart tbody");
  for (const row of chart.rows) {
    const when = new Date(row.measured_at);
    head.append(element("th", { scope: "col" }, `${when.toLocaleDateString([], { day: "2-digit", month: "short" })} ${clock(when)}`));
  }
  for (const [label, field, parameter] of layout(chart.spo2_scale)) {
    const tr = element("tr", {}, element("th", { scope: "row" }, label));
    for (const row of chart.rows) {
      const cell = element("td", {}, shown(field, row.values[field]));
      scored(cell, parameter && field in row.values ? row.sub_scores[parameter] : null);
      tr.append(cell);
    }
    body.append(tr);
  }
  const total = element("tr", { class: "total" }, element("th", { scope: "row" }, "NEWS2 total"));
  for (const row of chart.rows) {
    total.append(element("td", { class: `band band-${row.band || "none"}` }, row.news2_total ?? "–", " ", BANDS[row.band] || ""));
  }
  body.append(total);
}

function svg(tag, attributes) {
  const made = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, value);
  return made;
}

// The NEWS2 standing after each reading, over the chart's hours (0 to 20 on the vertical axis),
// with the band thresholds (5 and 7) drawn across.
function trend(chart) {
  const plot = document.querySelector("#trend");
  const [width, height, pad] = [960, 200, 30];
  const start = Date.parse(chart.since);
  const span = Math.max(Date.now() - start, 1);
  const x = (moment) => pad + ((Date.parse(moment) - start) / span) * (width - 2 * pad);
  const y = (score) => height - pad - (Math.min(score, 20) / 20) * (height - 2 * pad);
  for (const threshold of [5, 7]) {
    plot.append(svg("line", { x1: pad, x2: width - pad, y1: y(threshold), y2: y(threshold), class: `threshold t${threshold}` }));
  }
  for (const score of [0, 5, 7, 20]) {
    const label = svg("text", { x: 4, y: y(score) + 4, class: "axis" });
    label.textContent = String(score);
    plot.append(label);
  }
  const scored = chart.rows.filter((row) => row.news2_total !== null);
  const points = scored.map((row) => `${x(row.measured_at).toFixed(1)},${y(row.news2_total).toFixed(1)}`);
  plot.append(svg("polyline", { points: points.join(" "), class: "news2" }));
  for (const row of scored) {
    const dot = svg("circle", { cx: x(row.measured_at), cy: y(row.news2_total), r: 4, class: `band-${row.band}` });
    dot.append(Object.assign(document.createElementNS(SVG, "title"), { textContent: `NEWS2 ${row.news2_total}` }));
    plot.append(dot);
  }
  plot.dataset.points = String(scored.length);
}

async function main() {
  if (!(await signIn())) return say("Not signed in: no sign-in is configured; open the address `make up` printed.");
  try {
    const [patient, chart] = await Promise.all([api(`/api/v1/patient/${id}`), api(`/api/v1/patient/${id}/chart?hours=72`)]);
    const where = patient.location || {};
    document.querySelector("#who").textContent = `${patient.last_name}, ${patient.first_name}`;
    document.title = `${patient.last_name}, ${patient.first_name} · Painkiller`;
    const risk = patient.risk || {};
    document.querySelector("#standing").textContent =
      `${[where.ward, where.room, where.bed].filter(Boolean).join(" / ") || "No bed"} · NEWS2 ${risk.news2_total ?? "–"} ${BANDS[risk.band] || ""}`;
    if (where.ward) document.querySelector("#back").href = `/ward/?ward=${encodeURIComponent(where.ward)}`;
    table(chart);
    trend(chart);
  } catch (error) {
    const refused = error instanceof ApiError && [401, 403, 404].includes(error.status);
    say(refused ? "This chart is not yours to see, or does not exist." : `The chart could not be loaded: ${error.message}`);
  }
}

main();
