"""The pure parts: decide from inputs (including `now`); no clock, disk or network."""
