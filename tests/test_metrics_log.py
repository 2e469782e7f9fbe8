"""metrics.jsonl: whole on a process's first write (so a resumed run drops epochs its checkpoint lacks),
appended after, and readable after a kill cut its last line short."""

import json

from vade_cli import report


def rows(n, **extra):
    return [{"phase": "train", "epoch": e + 1, "loss": 1.0 / (e + 1), **extra} for e in range(n)]


def test_later_epochs_append_and_the_file_always_holds_the_rows_given(tmp_path):
    log = report.MetricsLog(tmp_path)
    for n in (1, 2, 3):
        log.write(rows(n))
        assert report.read_metrics_log(tmp_path) == rows(n)
    inode = (tmp_path / "metrics.jsonl").stat().st_ino
    log.write(rows(4))
    assert (tmp_path / "metrics.jsonl").stat().st_ino == inode  # appended in place, not rewritten
    assert report.read_metrics_log(tmp_path) == rows(4)


def test_a_new_process_rewrites_it_whole_dropping_epochs_past_the_checkpoint(tmp_path):
    report.MetricsLog(tmp_path).write(rows(5))  # the killed run logged 5 epochs; its checkpoint held 3
    resumed = report.MetricsLog(tmp_path)
    resumed.write(rows(3))
    assert report.read_metrics_log(tmp_path) == rows(3)


def test_a_changed_row_rewrites_the_file(tmp_path):
    log = report.MetricsLog(tmp_path)
    log.write(rows(2))
    changed = rows(2, acc=0.5)
    log.write(changed + rows(3)[2:])
    assert report.read_metrics_log(tmp_path) == changed + rows(3)[2:]


def test_a_last_line_cut_short_is_left_out(tmp_path):
    report.MetricsLog(tmp_path).write(rows(2))
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(rows(3)[2])[:10])  # a kill in the middle of an append
    assert report.read_metrics_log(tmp_path) == rows(2)
