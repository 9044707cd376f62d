// The ward board (doc/ward.md): one row per patient on the ward, sickest first, kept live by the
// ward's event stream.

import { ApiError, BANDS, PARAMETERS, api, clock, element, listen, say, scored, shown, signIn, since } from "/ward/ward.js";

const patients = new Map();
const ward = new URLSearchParams(location.search).get("ward");

// Highest NEWS2 first, a single parameter scoring 3 (low-medium) ranking with 5-6 (medium);
// then overdue first; then by bed.
const GROUP = { high: 3, medium: 2, low_medium: 2, low: 1 };
function order(a, b) {
  const [ra, rb] = [a.risk || {}, b.risk || {}];
  return (GROUP[rb.band] || 0) - (GROUP[ra.band] || 0)
    || (rb.news2_total ?? -1) - (ra.news2_total ?? -1)
    || Number(overdue(b)) - Number(overdue(a))
    || bed(a).localeCompare(bed(b), undefined, { numeric: true });
}

// The service says so when it answers; the clock moves on while the board stays open.
function overdue(patient) {
  const due = patient.next_observation_due_at;
  return patient.overdue || (due !== null && Date.now() > Date.parse(due));
}

function bed(patient) {
  const where = patient.location || {};
  return [where.room, where.bed].filter(Boolean).join(" / ");
}

function row(patient) {
  const risk = patient.risk || {};
  const scores = risk.sub_scores || {};
  const open = () => { location.href = `/ward/patients/${patient.id}`; };
  const tr = element("tr", { "data-patient-id": patient.id, "data-news2": risk.news2_total ?? "", tabindex: "0" });
  tr.addEventListener("click", open);
  tr.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
  const news2 = element("td", { class: `band band-${risk.band || "none"}` },
    risk.news2_total ?? "–", " ", element("span", {}, BANDS[risk.band] || "no score"));
  tr.append(element("td", {}, bed(patient) || "–"), element("th", { scope: "row" }, `${patient.last_name}, ${patient.first_name}`), news2);
  for (const [parameter, field] of PARAMETERS) {
    const cell = element("td", {}, shown(field, patient.latest_vitals[field]?.value));
    scored(cell, scores[parameter]);
    tr.append(cell);
  }
  tr.append(element("td", {}, risk.based_on ? since(risk.based_on) : "never"));
  const due = patient.next_observation_due_at;
  tr.append(element("td", { class: overdue(patient) ? "overdue" : "" },
    overdue(patient) ? "Overdue" : due ? `due ${clock(due)}` : "–"));
  return tr;
}

function draw() {
  const body = document.querySelector("#board tbody");
  body.replaceChildren(...[...patients.values()].sort(order).map(row));
  document.querySelector("#board").hidden = false;
}

async function load() {
  let cursor = null;
  do {
    const query = new URLSearchParams({ ward, limit: "100", ...(cursor ? { cursor } : {}) });
    const page = await api(`/api/v1/patient?${query}`);
    for (const patient of page.items) patients.set(patient.id, patient);
    cursor = page.next_cursor;
  } while (cursor);
  draw();
}

async function changed(event) {
  const { patient_id: id, kind } = event.data;
  if (["left", "discharged", "removed"].includes(kind)) {
    patients.delete(id);
  } else {
    const patient = await api(`/api/v1/patient/${id}`);
    if ((patient.location || {}).ward === ward) patients.set(id, patient);
  }
  draw();
}

function live(on) {
  const banner = document.querySelector("#live");
  banner.dataset.live = String(on);
  banner.textContent = on ? "Live" : "Not live: reconnecting";
}

async function main() {
  document.querySelector("#ward").value = ward || "";
  if (!(await signIn())) return say("Not signed in: no sign-in is configured; open the address `make up` printed.");
  if (!ward) return say("Choose a ward.");
  document.title = `Ward ${ward} · Painkiller`;
  try {
    await load();
  } catch (error) {
    const refused = error instanceof ApiError && (error.status === 401 || error.status === 403);
    return say(refused ? "This sign-in may not see a ward board." : `The board could not be loaded: ${error.message}`);
  }
  listen(`/api/v1/patient/wards/${encodeURIComponent(ward)}/events`, changed, live);
  setInterval(draw, 30000); // "3 min ago" and "Overdue" move with the clock
}

main();
