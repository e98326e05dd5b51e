// Reads a .ics with Mozilla's ical.js the way Thunderbird does (the file's
// VTIMEZONEs registered with the TimezoneService first) and prints a JSON
// report of what it understood.  Used by tests/test_calendar_real.py.
//
//   node check.mjs FILE.ics [QUERIES.json]
//
// QUERIES.json, optional: [{"tzid": "...", "local": "YYYY-MM-DDTHH:MM:SS"}, ...]
// asks for the UTC instant (POSIX seconds) of each wall-clock time in a zone
// defined by the file.
import { readFileSync } from "node:fs";
import ICAL from "ical.js";

const text = readFileSync(process.argv[2], "utf8");
const vcal = new ICAL.Component(ICAL.parse(text));
if (vcal.name !== "vcalendar") throw new Error("not a VCALENDAR: " + vcal.name);

const zones = vcal.getAllSubcomponents("vtimezone");
for (const vtz of zones) {
  ICAL.TimezoneService.register(vtz);
}

function when(t) {
  if (t === null) return null;
  if (t.isDate) return { date: t.toString() };
  return { unix: t.toUnixTime(), tzid: t.zone ? t.zone.tzid : null, local: t.toString() };
}

const events = [];
let alarms = 0;
for (const ve of vcal.getAllSubcomponents("vevent")) {
  const ev = new ICAL.Event(ve);
  const valarms = ve.getAllSubcomponents("valarm");
  alarms += valarms.length;
  const item = {
    uid: ev.uid,
    summary: ev.summary,
    description: ev.description,
    sequence: ev.sequence,
    start: when(ev.startDate),
    end: ev.endDate ? when(ev.endDate) : null,
    transp: ve.getFirstPropertyValue("transp"),
    dtstamp: ve.getFirstPropertyValue("dtstamp").toString(),
    triggers: valarms.map((a) => a.getFirstPropertyValue("trigger").toString()),
    recurring: ev.isRecurring(),
  };
  if (ev.isRecurring()) {
    const it = ev.iterator();
    item.occurrences = [];
    for (let i = 0; i < 3; i++) item.occurrences.push(it.next().toString());
  }
  events.push(item);
}

const report = {
  calname: vcal.getFirstPropertyValue("x-wr-calname"),
  ttl: vcal.getFirstPropertyValue("x-published-ttl"),
  refresh: vcal.getFirstPropertyValue("refresh-interval")?.toString() ?? null,
  version: vcal.getFirstPropertyValue("version"),
  prodid: vcal.getFirstPropertyValue("prodid"),
  vtimezones: zones.map((z) => z.getFirstPropertyValue("tzid")),
  vevents: events.length,
  valarms: alarms,
  events,
};

if (process.argv[3]) {
  const queries = JSON.parse(readFileSync(process.argv[3], "utf8"));
  report.answers = queries.map((q) => {
    const t = ICAL.Time.fromDateTimeString(q.local);
    t.zone = ICAL.TimezoneService.get(q.tzid);
    if (!t.zone) throw new Error("unknown tzid " + q.tzid);
    return t.toUnixTime();
  });
}
process.stdout.write(JSON.stringify(report));
