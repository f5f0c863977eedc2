"""Users' own files, with the quirks real files have: each is read as a user would expect, or
refused with one line naming the file, the line and what was expected."""

from __future__ import annotations

import pytest

from rnnkit.data.labelled import read_labelled


# -- text classification ------------------------------------------------------------------------
@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_csv_separated_by_semicolons_or_tabs_is_read(tmp_path, sep):
    path = tmp_path / "reviews.csv"  # as a spreadsheet in a comma-decimal locale saves it
    path.write_text(f"text{sep}label\r\ngood, really{sep}pos\r\nbad{sep}neg\r\n")
    data = read_labelled(path)
    assert data.texts == ["good, really", "bad"] and data.labels == ["pos", "neg"]


def test_a_csv_with_bom_crlf_quoted_newlines_extra_columns_and_blank_lines(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes(
        b'\xef\xbb\xbfid,text,label,source\r\n1,"two\r\nlines, one comma",pos,web\r\n'
        b"2,plain,neg,web\r\n\r\n\r\n"
    )
    data = read_labelled(path)
    assert data.texts == ["two\r\nlines, one comma", "plain"] and data.labels == ["pos", "neg"]


def test_a_folder_per_label_reads_txt_files_in_any_case(tmp_path):
    for label, name in [("très bon", "part1.TXT"), ("bad", "a.txt")]:
        (tmp_path / label).mkdir()
        (tmp_path / label / name).write_bytes(b"\xef\xbb\xbfone\r\ntwo\r\n")
    data = read_labelled(tmp_path)
    assert sorted(set(data.labels)) == ["bad", "très bon"]
    assert data.texts == ["one", "two", "one", "two"]
