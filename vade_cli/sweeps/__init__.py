"""The sweep side: what happens around many runs, after each has written its report.json.

    callback.py   the Hydra callback in conf/config.yaml: tabulates a multirun when it ends
    table.py      job reports -> rows -> table.md, table.csv (and table.png); `python -m vade_cli.sweeps.table DIR`
    figure.py     table.png, the rows as bars
    reproduce.py  the paper presets over seeds beside the published numbers; `python -m vade_cli.sweeps.reproduce`

Imports point one way: callback -> table -> figure (drawn lazily), reproduce -> table. Nothing is
imported here, so `python -m vade_cli.sweeps.table` runs its module once.
"""
