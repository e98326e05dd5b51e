from lormail.cli import run

run()
