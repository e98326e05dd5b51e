"""``lormail init``: a commented config, an example roster and the templates."""

from __future__ import annotations

import argparse
from pathlib import Path

from lormail.app.context import App
from lormail.commands.output import console
from lormail.errors import EXIT_OK, LormailError, Problem


def _data_file(name: str) -> Path:
    from lormail.core.render import default_templates_dir

    # Beside the shipped templates in a wheel; the source tree's root otherwise.
    return default_templates_dir().parent / name


def cmd_init(app: App, args: argparse.Namespace) -> int:
    target: Path = (args.dir or app.config_path.parent).expanduser()
    config_text = _data_file("config.example.yaml").read_text(encoding="utf-8")
    config_text = config_text.replace("roster: roster.example.yaml", "roster: roster.yaml        ")
    files = {
        target / "config.yaml": config_text,
        target / "roster.yaml": _data_file("roster.example.yaml").read_text(encoding="utf-8"),
    }
    templates_src = _data_file("templates")
    for tmpl in sorted(templates_src.glob("*.j2")):
        files[target / "templates" / tmpl.name] = tmpl.read_text(encoding="utf-8")
    existing = [p for p in files if p.exists()]
    if existing and not args.force:
        raise LormailError(
            [
                Problem(f"{p}: already exists; keep it, or run 'lormail init --force'")
                for p in existing
            ]
        )
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    out = console()
    out.print(
        f"Wrote {target / 'config.yaml'}, {target / 'roster.yaml'} and "
        f"{len(files) - 2} templates in {target / 'templates'}."
    )
    out.print("Next: edit roster.yaml, then run 'lormail check' and 'lormail plan'.")
    if args.dir is not None:
        out.print(f"(Pass '--config {target / 'config.yaml'}' or set LORMAIL_CONFIG.)")
    return EXIT_OK
