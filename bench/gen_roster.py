"""A seeded generator of large, realistic rosters for benchmarks and tests.

    python bench/gen_roster.py --recommenders 2000 --letters 5 --seed 1 -o /tmp/big/roster.yaml

writes the roster and, next to it, a ``config.yaml`` that uses the maildir
transport, keeps its state in a sibling ``state`` folder and is not a dry run.
The same arguments always give the same bytes.  Deadlines are spread over the
months after ``--today``; a few programs' deadlines have passed (their letters
are in, some outcomes are known).  A recommender's programs on one letter
service (ERAS, AMCAS) go as one letter for all of them, as they do in life,
sometimes with its own ``due`` date.
"""

from __future__ import annotations

import argparse
import random
from datetime import date, timedelta
from pathlib import Path

ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Sydney",
)
SURNAMES = (
    "Johnson",
    "Patel",
    "Garcia",
    "Okafor",
    "Nguyen",
    "Lee",
    "Smith",
    "Müller",
    "Kowalski",
    "Haddad",
    "Kim",
    "Silva",
    "Cohen",
    "Ivanova",
    "O'Brien",
    "Tanaka",
    "Mensah",
    "Rossi",
    "Andersson",
    "Dubois",
    "Khan",
    "Novak",
    "Fischer",
    "Costa",
    "Yilmaz",
    "Chen",
    "Singh",
)
GIVEN = (
    "Emily",
    "Anil",
    "Maria",
    "Chidi",
    "Linh",
    "Grace",
    "James",
    "Sofia",
    "Ahmed",
    "Yuki",
    "Olga",
    "David",
    "Priya",
    "Tomás",
    "Amara",
    "Lars",
    "Hana",
    "Mateo",
    "Fatima",
    "Noah",
)
TITLES = (
    "Professor of Medicine",
    "Associate Professor of Surgery",
    "Consultant Physician",
    "Director, Epidemiology Research Lab",
    "Assistant Professor of Pediatrics",
    "Program Director, Internal Medicine",
    "Attending Physician",
)
RELATIONSHIPS = (
    "research mentor",
    "thesis advisor",
    "sub-internship attending",
    "clerkship director",
    "lab supervisor",
    "course director",
    "elective supervisor",
)
FIELDS = (
    "Internal Medicine",
    "Pediatrics",
    "Epidemiology",
    "Global Health",
    "Surgery",
    "Neurology",
    "Psychiatry",
    "Public Health",
    "Biostatistics",
    "Family Medicine",
)
KINDS = ("residency (ERAS)", "MPH (SOPHAS)", "PhD", "MSc", "fellowship", "MD (AMCAS)")
PORTALS = ("ERAS LoR Portal", "SOPHAS", "AMCAS Letter Service", "Graduate Admissions", None)
# Portals where one upload serves every program that uses them.
SERVICES = {"ERAS LoR Portal": "eras", "AMCAS Letter Service": "amcas"}
_Program = tuple[str, date, str, str | None]  # id, deadline date, yaml text, portal
OUTCOMES = ("interview", "waitlisted", "accepted", "matched", "rejected", "withdrawn")


def _q(text: str) -> str:
    """A YAML double-quoted scalar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _programs(rng: random.Random, count: int, today: date) -> list[_Program]:
    """Writes nothing; returns (id, deadline date, yaml text, portal) per program."""
    out = []
    for i in range(count):
        pid = f"p{i:05d}"
        past = rng.random() < 0.1
        deadline = today + timedelta(days=rng.randint(-60, -2) if past else rng.randint(14, 240))
        name = f"{rng.choice(FIELDS)} {rng.choice(KINDS)} #{i}"
        lines = [f"  - id: {pid}", f"    name: {_q(name)}"]
        portal = rng.choice(PORTALS)
        if portal:
            lines.append(f"    portal: {portal}")
        zone = rng.choice((None, *ZONES))
        if rng.random() < 0.2:
            offset = rng.choice(("-05:00", "-04:00", "+00:00", "+05:30", "+10:00"))
            lines.append(f'    deadline: "{deadline.isoformat()}T17:00:00{offset}"')
        else:
            lines.append(f"    deadline: {deadline.isoformat()}")
        if zone:
            lines.append(f"    timezone: {zone}")
        if past and rng.random() < 0.6:
            lines.append(f"    outcome: {rng.choice(OUTCOMES)}")
            known = deadline + timedelta(days=rng.randint(1, 30))
            if known < today and rng.random() < 0.7:
                lines.append(f"    outcome_on: {known.isoformat()}")
        out.append((pid, deadline, "\n".join(lines), portal))
    return out


def _recommender(
    rng: random.Random, i: int, letters: int, programs: list[_Program], today: date
) -> str:
    given, surname = rng.choice(GIVEN), rng.choice(SURNAMES)
    rid = f"r{i:05d}"
    domain = f"{rng.choice(('hospital', 'university', 'college', 'clinic'))}{i % 97}.example.org"
    local = f"{given[0]}.{surname}".lower().replace("'", "").replace("ü", "u").replace("á", "a")
    status = rng.choices(("planned", "asked", "agreed", "declined"), (25, 25, 40, 10))[0]
    lines = [
        f"  - id: {rid}",
        f"    name: {_q(f'Dr. {given} {surname}')}",
        f"    salutation: {_q(f'Dr. {surname}')}",
        f"    email: {local}.{i}@{domain}",
        f"    title: {rng.choice(TITLES)}",
        f"    relationship: {rng.choice(RELATIONSHIPS)}",
    ]
    if rng.random() < 0.8:
        lines.append(f"    timezone: {rng.choice(ZONES)}")
    lines.append(f"    status: {status}")
    pool = programs if status == "agreed" else [p for p in programs if p[1] >= today]
    chosen = rng.sample(pool, min(letters, len(pool)))
    chosen.sort(key=lambda p: (p[1], p[0]))
    asked = today - timedelta(days=rng.randint(5, 60))
    if chosen:  # people are asked well before their first deadline
        asked = min(asked, chosen[0][1] - timedelta(days=rng.randint(28, 70)))
    if status == "planned":
        if rng.random() < 0.5:
            lines.append("    ask_by_email: true")
            lines.append(f"    ask_on: {(today + timedelta(days=rng.randint(0, 30))).isoformat()}")
    else:
        lines.append(f"    asked_on: {asked.isoformat()}")
    if status == "agreed" and rng.random() < 0.8:
        lines.append(f"    agreed_on: {(asked + timedelta(days=rng.randint(1, 4))).isoformat()}")
    if status == "declined":
        lines.append(f"    declined_on: {(asked + timedelta(days=rng.randint(1, 4))).isoformat()}")
    if rng.random() < 0.7:
        lines.append(f"    waived: {rng.choice(('true', 'false'))}")
    if rng.random() < 0.4:
        lines.append("    highlights:")
        lines.append(f"      - {_q('the ' + rng.choice(FIELDS).lower() + ' project')}")
    if rng.random() < 0.2:
        start = today + timedelta(days=rng.randint(0, 120))
        end = start + timedelta(days=rng.randint(0, 14))
        note = rng.choice(("conference", "vacation", "on service", "grant deadline"))
        lines.append("    unavailable:")
        lines.append(f"      - {{from: {start.isoformat()}, to: {end.isoformat()}, note: {note}}}")
    override = rng.random()
    if override < 0.05:
        lines.append("    reminders: [10d]")
    elif override < 0.10:
        lines.append('    send_window: "08:00-12:00"')
    elif override < 0.15:
        lines.append("    send_days: [mon, wed, fri]")
    if chosen:
        lines.append("    letters:")
    # One letter per letter service used more than once, one per program otherwise;
    # programs elsewhere make up the letters a service's upload saved.
    groups: dict[str, list[_Program]] = {}
    for prog in chosen:
        service = SERVICES.get(prog[3] or "")
        groups.setdefault(service or prog[0], []).append(prog)
    taken = {p[0] for p in chosen}
    spare = [p for p in pool if p[0] not in taken and p[3] not in SERVICES]
    for prog in rng.sample(spare, min(len(chosen) - len(groups), len(spare))):
        groups[prog[0]] = [prog]
    for key, group in sorted(groups.items(), key=lambda g: (g[1][0][1], g[0])):
        deadline = group[0][1]  # the earliest: chosen is sorted by deadline
        if len(group) > 1:
            ids = ", ".join(p[0] for p in group)
            parts = [f"id: {key}", f"programs: [{ids}]"]
            if rng.random() < 0.3 and deadline > today + timedelta(days=7):
                deadline -= timedelta(days=rng.randint(1, 7))
                parts.append(f"due: {deadline.isoformat()}")
        else:
            parts = [f"program: {group[0][0]}"]
        if rng.random() < 0.3:
            parts.append(f'letter_id: "LoR-{rng.randint(10000, 99999)}"')
        if status == "agreed" and (deadline < today or rng.random() < 0.3):
            latest = min(today - timedelta(days=1), deadline)
            earliest = min(asked + timedelta(days=2), latest)
            span = max(0, (latest - earliest).days)
            parts.append(
                f"submitted_on: {(earliest + timedelta(days=rng.randint(0, span))).isoformat()}"
            )
        lines.append("      - {" + ", ".join(parts) + "}")
    return "\n".join(lines)


def generate(recommenders: int, letters: int, seed: int, today: date) -> str:
    """The roster's text: deterministic for one set of arguments."""
    rng = random.Random(seed)
    n_programs = max(letters, recommenders * letters // 10, 1)
    programs = _programs(rng, n_programs, today)
    parts = [
        f"# Generated by bench/gen_roster.py: {recommenders} recommenders × {letters} letters,",
        f"# seed {seed}, today {today.isoformat()}.",
        "",
        "applicant:",
        "  name: Sarah Chen",
        "  email: sarah.chen@example.edu",
        "  timezone: America/New_York",
        "  signature: |",
        "    Sarah Chen",
        "    MS4, Example School of Medicine",
        "  materials:",
        '    - {label: CV, url: "https://example.edu/sarah/cv.pdf"}',
        "",
        "defaults:",
        "  ask_lead: 6w",
        "  reminders: [14d, 7d]",
        "  min_gap: 5d",
        "  thank_you_delay: 1d",
        '  send_window: "09:00-17:00"',
        "  send_days: [mon, tue, wed, thu, fri]",
        "  decline_thanks: true",
        "  notify_outcomes: [interview, accepted, matched]",
        "  check_in_every: 90d",
        "",
        "programs:",
    ]
    parts.extend(text for _, _, text, _ in programs)
    parts.append("")
    parts.append("recommenders:" if recommenders else "recommenders: []")
    parts.extend(_recommender(rng, i, letters, programs, today) for i in range(recommenders))
    return "\n".join(parts) + "\n"


CONFIG = """\
# Generated by bench/gen_roster.py, next to {roster}.
roster: {roster}
state_dir: state
dry_run: false
transport: maildir
maildir: outbox
calendar:
  file: deadlines.ics
  alarms: [7d, 1d]
  include_messages: true
  feed: {{enabled: false, bind: 127.0.0.1, port: 8765}}
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recommenders", type=int, default=100, metavar="N")
    p.add_argument("--letters", type=int, default=3, metavar="M", help="per recommender")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--today", type=date.fromisoformat, default=date(2026, 11, 22))
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    args = p.parse_args(argv)
    out: Path = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(generate(args.recommenders, args.letters, args.seed, args.today), "utf-8")
    (out.parent / "config.yaml").write_text(CONFIG.format(roster=out.name), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
