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


def test_labels_written_decomposed_are_the_same_labels_composed(tmp_path):
    import unicodedata

    (tmp_path / "mac").mkdir()  # a folder name as macOS stores it: o + combining diaeresis
    for label in (unicodedata.normalize("NFD", "zwölf"), "eins"):
        (tmp_path / "mac" / label).mkdir()
        (tmp_path / "mac" / label / "a.txt").write_text("x\ny\n")
    table = tmp_path / "elsewhere.csv"
    table.write_text("text,label\nx,zwölf\ny,eins\n", encoding="utf-8")
    assert sorted(set(read_labelled(tmp_path / "mac").labels)) == ["eins", "zwölf"]
    assert set(read_labelled(tmp_path / "mac").labels) == set(read_labelled(table).labels)


def test_predict_reads_lines_with_a_bom_crlf_or_utf16(tmp_path):
    import io

    from rnnkit.tasks.classify import read_lines

    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfgood film\r\nbad \xc2\x85 plot\r\n")
    (tmp_path / "b.txt").write_bytes("one\r\ntwo\n".encode("utf-16"))  # with its mark
    names = [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    assert read_lines(names, None) == ["good film", "bad \x85 plot", "one", "two"]
    assert read_lines([], io.StringIO("\ufeffgood film\r\nbad\n")) == ["good film", "bad"]


# -- forecasting --------------------------------------------------------------------------------
def test_a_series_of_one_row_takes_the_step_of_the_others(tmp_path):
    from rnnkit.data.series import read_long_csv

    path = tmp_path / "sales.csv"
    rows = [f"a,2024-01-01 {h:02d}:00,{h}" for h in range(6)] + ["b,2024-01-01 03:00,7"]
    path.write_text("unique_id,ds,y\n" + "\n".join(rows) + "\n")
    panel = read_long_csv(path)
    lonely = panel.series[1]
    assert lonely.uid == "b" and lonely.step == 3600  # was one second
    later = int(lonely.times(2, offset=1)[1])
    assert panel.format_time(later, lonely.step) == "2024-01-01 05:00:00"


@pytest.mark.parametrize(
    "stamp, written",
    [
        ("2024-01-01T10:00:00+02:00", "2024-01-01 11:00:00+02:00"),
        ("2024-01-01T10:00:00Z", "2024-01-01 11:00:00+00:00"),
        ("2024-01-01 10:00:00", "2024-01-01 11:00:00"),
    ],
)
def test_forecast_times_are_written_in_the_zone_of_the_input(tmp_path, stamp, written):
    from rnnkit.data.series import read_long_csv

    path = tmp_path / "sales.csv"
    first = stamp.replace("10:00", "09:00")
    path.write_text(f"unique_id,ds,y\na,{first},1\na,{stamp},2\n")
    panel = read_long_csv(path)
    s = panel.series[0]
    next_time = int(s.times(1, offset=len(s.values))[0])
    assert panel.format_time(next_time, s.step) == written  # was 09:00 in UTC, zone dropped


# -- anomaly detection --------------------------------------------------------------------------
def test_timestamps_with_a_zone_are_read_in_utc_without_numpy_warning():
    import warnings

    import numpy as np

    from rnnkit.data.detect_csv import parse_time

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's own parse warns once per file
        assert parse_time("2014-07-01T02:00:00+02:00") == np.datetime64("2014-07-01T00:00")
        assert parse_time("2014-07-01T00:00:00Z") == np.datetime64("2014-07-01T00:00")
        assert parse_time("2014-07-01 00:00:00 -0530") == np.datetime64("2014-07-01T05:30")
        assert parse_time("2014-07-01") == np.datetime64("2014-07-01T00:00")
        assert parse_time("nonsense") is None
        assert parse_time("2014-07-01 02:00:00+02") == np.datetime64("2014-07-01T00:00")  # psql
        assert parse_time("2014-07-01 00:00:00 UTC") == np.datetime64("2014-07-01T00:00")


def test_forecast_reads_utc_and_short_offsets():
    from rnnkit.data.series import _time_value

    assert _time_value("2014-07-01 00:00:00 UTC") == ("seconds", 1404172800, 0)  # was None
    assert _time_value("2014-07-01 02:00:00+02") == ("seconds", 1404172800, 7200)


def test_detect_quotes_an_id_with_a_comma_and_streams_a_file_with_a_bom(tmp_path, capsys):
    import csv

    from rnnkit.cli import main
    from rnnkit.tasks.detect import LineScorer

    names = ("Berlin, north", "Paris")
    rows = [f'"{name}",{k},{(k * 7) % 11}' for name in names for k in range(60)]
    src = tmp_path / "sites.csv"
    src.write_text("site,timestamp,value\n" + "\n".join(rows) + "\n")
    out = tmp_path / "scores.csv"
    argv = ["detect", "--csv", str(src), "--id-column", "site", "--out", str(out)]
    assert main([*argv, "--probation", "20"]) == 0
    table = list(csv.reader(out.read_text().splitlines()))
    assert {len(r) for r in table} == {4} and table[1][0] == "Berlin, north"
    scorer = LineScorer(20, {"seed": 0})
    assert scorer.handle("\ufefftimestamp,value\r\n") is None  # the header, not an error
    assert scorer.handle("1,2.5\r\n") == "1,2.5,0"


def test_detect_reads_utf16_and_names_the_line_of_latin1(tmp_path):
    from rnnkit.data.detect_csv import read_series
    from rnnkit.errors import InputError

    path = tmp_path / "s.csv"
    path.write_bytes("timestamp,value\r\n1,2.5\r\n2,3\r\n".encode("utf-16"))
    series, _ = read_series(path)
    assert series[0].values == [2.5, 3.0]
    path.write_bytes(b"timestamp,value\n1,2.5\n2,caf\xe9\n")
    with pytest.raises(InputError, match=r"s.csv' is not valid UTF-8 \(line 3") as info:
        read_series(path)
    assert "\n" not in str(info.value)


# -- separators of time-series files ------------------------------------------------------------
@pytest.mark.parametrize(
    "sep, value", [(";", "2,5"), (";", "2.5"), ("\t", "2.5"), (",", '"2.5"')], ids=str
)
def test_series_files_separated_by_semicolons_or_tabs(tmp_path, sep, value):
    from rnnkit.data.detect_csv import read_series
    from rnnkit.data.series import read_long_csv

    long = tmp_path / "sales.csv"
    long.write_bytes(
        f"\ufeffunique_id{sep}ds{sep}y\r\na{sep}1{sep}1\r\na{sep}2{sep}{value}\r\n".encode()
    )
    assert read_long_csv(long).series[0].values.tolist() == [1.0, 2.5]
    nab = tmp_path / "nab.csv"
    nab.write_text(f"timestamp{sep}value\n2014-07-01 00:00{sep}1\n2014-07-01 00:05{sep}{value}\n")
    series, _ = read_series(nab)
    assert series[0].values == [1.0, 2.5]


def test_a_decimal_comma_in_a_comma_separated_file_is_still_an_error(tmp_path):
    from rnnkit.data.series import read_long_csv
    from rnnkit.errors import InputError

    path = tmp_path / "sales.csv"
    path.write_text('unique_id,ds,y\na,1,1\na,2,"2,5"\n')
    with pytest.raises(InputError, match="line 3, column 'y': expected a number, got '2,5'"):
        read_long_csv(path)


@pytest.mark.parametrize("day, written", [("end", "2021-01-31"), ("start", "2021-01-01")])
def test_monthly_forecasts_keep_the_day_of_month_of_the_input(tmp_path, day, written):
    import calendar

    from rnnkit.data.series import read_long_csv

    rows = []
    for m in range(1, 13):
        d = calendar.monthrange(2020, m)[1] if day == "end" else 1
        rows.append(f"a,2020-{m:02d}-{d:02d},{m}")
    path = tmp_path / "monthly.csv"
    path.write_text("unique_id,ds,y\n" + "\n".join(rows) + "\n")
    panel = read_long_csv(path)
    s = panel.series[0]
    assert panel.kind == "months" and s.step == 1
    assert panel.format_time(int(s.times(1, offset=12)[0]), s.step) == written  # was 01 always


# -- language model -----------------------------------------------------------------------------
def test_lm_text_with_windows_line_ends_and_txt_in_upper_case(tmp_path):
    from rnnkit.data.text import Vocabulary, read_text

    (tmp_path / "a.TXT").write_bytes(b"\xef\xbb\xbfROMEO:\r\nHello.\r\n")
    (tmp_path / "b.txt").write_bytes(b"old mac\rline\n")
    text = read_text(tmp_path)
    assert text == "ROMEO:\nHello.\n\nold mac\nline\n"  # was: a.TXT skipped, '\r' learned
    assert "\r" not in Vocabulary.build(text).tokens


# -- audio --------------------------------------------------------------------------------------
def _wav24_with_list_chunk(path, rate, x):
    """A 24-bit PCM WAV as editors save it: a LIST/INFO chunk of odd size (padded) before data."""
    import struct

    import numpy as np

    v = np.round(np.clip(x, -1, 1) * (2**23 - 1)).astype("<i4")
    raw = b"".join(int(s).to_bytes(3, "little", signed=True) for s in v)
    info = b"INFO" + b"INAM" + struct.pack("<I", 5) + b"test\x00" + b"\x00"
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 3, 3, 24)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    body += b"LIST" + struct.pack("<I", len(info)) + info
    body += b"data" + struct.pack("<I", len(raw)) + raw + b"\x00" * (len(raw) % 2)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def test_wav_files_as_users_have_them(tmp_path):
    import numpy as np
    from scipy.io import wavfile

    from rnnkit.audio.wav import read_wav

    t = np.arange(8000) / 8000
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    (tmp_path / "zwölf").mkdir()
    (tmp_path / "zero one").mkdir()
    _wav24_with_list_chunk(tmp_path / "zwölf" / "a.wav", 8000, x)
    y = np.sin(2 * np.pi * 440 * np.arange(44100) / 44100) * 0.5
    stereo = (np.stack([y, y], axis=1) * 32767).astype(np.int16)
    wavfile.write(tmp_path / "zero one" / "B.WAV", 44100, stereo)
    np.testing.assert_allclose(read_wav(tmp_path / "zwölf" / "a.wav"), x, atol=1e-6)
    resampled = read_wav(tmp_path / "zero one" / "B.WAV", 8000)
    assert resampled.shape == (8000,) and abs(np.max(np.abs(resampled[100:-100])) - 0.5) < 0.01
    data = read_labelled(tmp_path)
    assert data.audio and sorted(data.labels) == ["zero one", "zwölf"]


def test_a_manifest_path_written_from_the_current_folder_is_explained(tmp_path, monkeypatch):
    from rnnkit.errors import InputError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.csv").write_text("path,label\naudio/a.wav,x\n")
    with pytest.raises(InputError, match="'audio/a.wav' exists from the current folder"):
        read_labelled("lists/train.csv")


# -- music --------------------------------------------------------------------------------------
def test_midi_type_0_and_1_with_tempo_changes_drums_and_a_note_off_the_piano(tmp_path):
    import mido
    import numpy as np

    from rnnkit.data.music import read_midi
    from rnnkit.errors import RnnkitWarning

    conductor = mido.MidiTrack(
        [
            mido.MetaMessage("set_tempo", tempo=500000, time=0),
            mido.MetaMessage("set_tempo", tempo=300000, time=96),  # faster from beat 2
        ]
    )
    voice = mido.MidiTrack()
    for pitch in [60, 62, 64, 65]:
        voice.append(mido.Message("note_on", channel=1, note=pitch, velocity=70, time=0))
        voice.append(mido.Message("note_off", channel=1, note=pitch, time=96))
    bell = mido.MidiTrack(  # a glockenspiel note above C8, and drums on channel 10
        [
            mido.Message("note_on", channel=2, note=115, velocity=70, time=96),
            mido.Message("note_on", channel=9, note=36, velocity=90, time=0),
            mido.Message("note_off", channel=2, note=115, time=96),
        ]
    )
    one = mido.MidiFile(type=1, ticks_per_beat=96, tracks=[conductor, voice, bell])
    one.save(tmp_path / "one.mid")
    zero = mido.MidiFile(type=0, ticks_per_beat=96)
    zero.tracks.append(mido.merge_tracks([conductor, voice]))
    zero.save(tmp_path / "zero.MID")
    with pytest.warns(RnnkitWarning, match="1 note\\(s\\) outside the piano \\(pitch 115\\)"):
        roll = read_midi(tmp_path / "one.mid")  # was: the whole file refused
    expected = np.zeros((4, 88), dtype=np.uint8)
    expected[np.arange(4), np.array([60, 62, 64, 65]) - 21] = 1
    np.testing.assert_array_equal(roll, expected)  # steps are beats, whatever the tempo
    np.testing.assert_array_equal(read_midi(tmp_path / "zero.MID"), expected)


def test_detect_reads_a_header_in_another_case_as_the_stream_does(tmp_path):
    from rnnkit.data.detect_csv import read_series
    from rnnkit.errors import InputError

    path = tmp_path / "sensor.csv"
    path.write_text("Timestamp,Value\n2014-07-01 00:00,1\n2014-07-01 00:05,2\n")
    series, _ = read_series(path)  # was: no column 'timestamp'
    assert series[0].values == [1.0, 2.0]
    path.write_text("timestamp,Value,VALUE\n2014-07-01 00:00,1,2\n")
    with pytest.raises(InputError, match="no column 'value' in the header.*--value-column"):
        read_series(path)  # two candidates: no guess
    with pytest.raises(InputError, match=r"no column 'sensor'.*\(name yours with --id-column\)$"):
        read_series(path, value_column="Value", id_column="sensor")  # was --time-column/...


def test_forecast_errors_name_the_line_a_row_starts_on_and_explain_a_repeated_hour(tmp_path):
    from rnnkit.data.series import read_long_csv
    from rnnkit.errors import InputError

    path = tmp_path / "sales.csv"
    path.write_text('unique_id,ds,y\n"shop\nnorth",1,1\n"shop\nnorth",2,x\n')
    with pytest.raises(InputError, match="line 4, column 'y': expected a number"):  # was 3
        read_long_csv(path)
    path.write_text(
        "unique_id,ds,y\na,2024-10-27 01:00,1\na,2024-10-27 02:00,1\na,2024-10-27 02:00,1\n"
    )
    with pytest.raises(InputError, match="repeats the one on line 3.*daylight saving time ends"):
        read_long_csv(path)
    path.write_text("unique_id,ds,y\na,1,1\na,1,2\n")
    with pytest.raises(InputError, match=r"expected increasing times within each series \(sort"):
        read_long_csv(path)


def test_a_forecast_csv_in_latin_1_or_with_a_huge_field_is_one_line(tmp_path):
    from rnnkit.data.series import read_long_csv
    from rnnkit.errors import InputError

    path = tmp_path / "sales.csv"
    path.write_bytes(b"unique_id,ds,y\nm\xfcnchen,1,1\n")  # was a UnicodeDecodeError traceback
    with pytest.raises(InputError, match="is not valid UTF-8 \\(line 2"):
        read_long_csv(path)
    path.write_text('unique_id,ds,y,note\na,1,1,"' + "x" * 200_000 + '"\n')
    with pytest.raises(InputError, match="line 2: malformed CSV \\(field larger"):
        read_long_csv(path)  # was a _csv.Error traceback


def test_a_wav_with_an_unpadded_odd_chunk_is_one_line(tmp_path):
    import struct

    from rnnkit.audio.wav import read_wav
    from rnnkit.errors import InputError

    samples = bytes(range(100, 200)) * 40
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    body += b"junk" + struct.pack("<I", 3) + b"abc"  # odd size, no pad byte
    body += b"data" + struct.pack("<I", len(samples)) + samples
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(InputError, match="broken.wav' is a WAV file in a format that cannot"):
        read_wav(path)  # was an UnboundLocalError traceback from scipy


# -- translation --------------------------------------------------------------------------------
def test_a_pairs_header_of_language_names_is_skipped(tmp_path):
    from rnnkit.data.pairs import read_pairs

    path = tmp_path / "pairs.tsv"
    path.write_bytes(b"\xef\xbb\xbfEnglish\tFrench\r\nGo.\tVa !\r\n\r\nHi.\tSalut.\r\n")
    assert read_pairs(path) == [("Go.", "Va !"), ("Hi.", "Salut.")]  # was ("English", "French")


def test_integer_unix_time_stamps_are_read_as_times(tmp_path):
    from rnnkit.data.series import read_long_csv
    from rnnkit.tasks.forecast import default_season

    start = 1_425_168_000  # 2015-03-01 00:00 UTC
    path = tmp_path / "sensor.csv"
    rows = [f"a,{start + 3600 * h},{h % 24}" for h in range(72)]
    path.write_text("unique_id,ds,y\n" + "\n".join(rows) + "\n")
    panel = read_long_csv(path)
    s = panel.series[0]
    assert panel.kind == "seconds" and s.step == 3600  # was integer steps: season 1
    assert default_season(panel.kind, s.step) == 24
    assert panel.format_time(int(s.times(1, offset=72)[0]), s.step) == str(start + 3600 * 72)
    path.write_text("unique_id,ds,y\na,1,1\na,2,2\n")  # small integers stay steps
    assert read_long_csv(path).kind == "int"


# -- encodings ----------------------------------------------------------------------------------
def test_utf16_files_with_a_byte_order_mark_are_read(tmp_path):
    from rnnkit.data.detect_csv import read_series
    from rnnkit.data.pairs import read_pairs
    from rnnkit.data.series import read_long_csv

    def utf16(name, text):  # as Windows PowerShell's Out-File and `>` write by default
        path = tmp_path / name
        path.write_bytes(text.replace("\n", "\r\n").encode("utf-16"))
        return path

    assert read_labelled(utf16("r.csv", "text,label\ncafé,pos\nbad,neg\n")).texts[0] == "café"
    assert read_long_csv(utf16("s.csv", "unique_id,ds,y\na,1,1\na,2,2\n")).rows == 2
    assert read_series(utf16("n.csv", "timestamp,value\n1,2\n2,3\n"))[0][0].values == [2.0, 3.0]
    assert read_pairs(utf16("p.txt", "Go.\tVa !\n")) == [("Go.", "Va !")]


def test_train_forecast_reads_the_file_forecast_reads_future_rows_marked_na(tmp_path, capsys):
    import math

    from rnnkit.cli import main

    path = tmp_path / "sales.csv"
    lines = ["unique_id,ds,y,promo"]
    for i in range(80):
        lines.append(
            f"a,{i},{10 + 3 * math.sin(i / 2) + (2 if i % 5 == 0 else 0):.3f},{int(i % 5 == 0)}"
        )
    lines += [f"a,{i},NA,{int(i % 5 == 0)}" for i in range(80, 84)]  # as R's write.csv marks it
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m.safetensors"
    common = ["--csv", str(path), "--horizon", "4"]
    flags = ["--season", "5", "--models", "1", "--steps", "2", "--out", str(out)]
    assert main(["train", "forecast", *common, *flags]) == 0, (
        capsys.readouterr().err
    )  # was: line 82 missing value
    fc = tmp_path / "fc.csv"
    assert main(["forecast", str(out), "--csv", str(path), "--out", str(fc)]) == 0
    assert fc.read_text().splitlines()[1].startswith("a,80,")


def test_column_names_in_another_case_are_found_in_every_csv_reader(tmp_path):
    from rnnkit.data.series import read_long_csv

    reviews = tmp_path / "reviews.csv"
    reviews.write_text("Text,Label\ngood,pos\nbad,neg\n")
    assert read_labelled(reviews).labels == ["pos", "neg"]  # was: no column 'text'
    sales = tmp_path / "sales.csv"
    sales.write_text("Unique_ID,DS,Y\na,1,1\na,2,2\n")
    assert read_long_csv(sales).series[0].values.tolist() == [1.0, 2.0]


def test_a_notes_file_beside_recordings_does_not_turn_them_into_text(tmp_path):
    import numpy as np
    from scipy.io import wavfile

    tone = (np.sin(np.arange(800) * 0.3) * 8000).astype(np.int16)
    for label in ("yes", "no"):
        (tmp_path / label).mkdir()
        for k in range(3):
            wavfile.write(tmp_path / label / f"{k}.wav", 8000, tone)
    (tmp_path / "yes" / "notes.txt").write_text("recorded in the kitchen\n")
    data = read_labelled(tmp_path)
    assert data.audio and len(data) == 6  # was: one text example, 'recorded in the kitchen'


def test_hidden_files_and_macos_zip_leftovers_are_passed_over(tmp_path):
    import numpy as np
    from scipy.io import wavfile

    tone = (np.sin(np.arange(800) * 0.3) * 8000).astype(np.int16)
    for label in ("yes", "no", "__MACOSX"):
        (tmp_path / label).mkdir()
        wavfile.write(tmp_path / label / "0.wav", 8000, tone)
    (tmp_path / "yes" / "._0.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / "no" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    data = read_labelled(tmp_path)
    assert sorted(data.labels) == ["no", "yes"]  # was: a third label, and '._0.wav' unreadable


def test_macos_twins_in_text_and_midi_folders_are_passed_over(tmp_path):
    import mido

    from rnnkit.data.music import read_music
    from rnnkit.data.text import read_text

    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("hello\n")
    (tmp_path / "texts" / "._a.txt").write_bytes(b"\x00\x05\x16\x07\xff")
    assert read_text(tmp_path / "texts") == "hello\n"  # was: not valid UTF-8
    (tmp_path / "midi" / "__MACOSX").mkdir(parents=True)
    notes = [mido.Message("note_on", note=60, time=0), mido.Message("note_off", note=60, time=960)]
    mido.MidiFile(tracks=[mido.MidiTrack(notes)]).save(tmp_path / "midi" / "a.mid")
    (tmp_path / "midi" / "__MACOSX" / "._a.mid").write_bytes(b"\x00\x05\x16\x07")
    assert len(read_music(tmp_path / "midi")["all"]) == 1  # was: not a readable MIDI file


@pytest.mark.parametrize(
    "text",
    [
        ",unique_id,ds,y\n0,a,1,1\n1,a,2,2\n",  # df.to_csv() with pandas' row index
        "unique_id,ds,y,\na,1,1,\na,2,2,\n",  # a trailing comma on every line
    ],
)
def test_a_column_without_a_name_is_no_covariate(tmp_path, text):
    from rnnkit.data.series import read_long_csv

    path = tmp_path / "sales.csv"
    path.write_text(text)
    panel = read_long_csv(path)
    assert panel.covariate_names == []  # was: the row index trained on as a covariate
    assert panel.series[0].values.tolist() == [1.0, 2.0]


def test_a_text_column_in_a_forecast_csv_says_what_columns_are(tmp_path):
    from rnnkit.data.series import read_long_csv
    from rnnkit.errors import InputError

    path = tmp_path / "sales.csv"
    path.write_text("unique_id,ds,y,store\na,1,1,Berlin\n")
    with pytest.raises(InputError, match="besides unique_id, ds and y is a numeric covariate"):
        read_long_csv(path)


def test_a_manifest_written_on_windows_finds_its_files(tmp_path):
    import numpy as np
    from scipy.io import wavfile

    (tmp_path / "audio" / "yes").mkdir(parents=True)
    tone = (np.sin(np.arange(800) * 0.3) * 8000).astype(np.int16)
    wavfile.write(tmp_path / "audio" / "yes" / "a.wav", 8000, tone)
    manifest = tmp_path / "train.csv"
    manifest.write_bytes(b"path,label\r\naudio\\yes\\a.wav,yes\r\n")
    data = read_labelled(manifest)  # was: no such audio file '.../audio\\yes\\a.wav'
    assert data.audio and data.texts == [str(tmp_path / "audio" / "yes" / "a.wav")]


def test_integer_steps_other_than_one_forecast_as_steps_of_one(tmp_path, capsys):
    import json
    import math

    from rnnkit.cli import main

    metrics = []
    for step in (1, 6):  # ds in minutes sampled every 6, say
        path = tmp_path / f"every{step}.csv"
        rows = [
            f"s{s},{step * i},{50 + 20 * math.sin(2 * math.pi * i / 12 + s):.3f}"
            for s in range(3)
            for i in range(120)
        ]
        path.write_text("unique_id,ds,y\n" + "\n".join(rows) + "\n")
        out = tmp_path / f"m{step}.safetensors"
        argv = ["train", "forecast", "--csv", str(path), "--horizon", "12", "--season", "12"]
        assert main([*argv, "--models", "1", "--steps", "3", "--out", str(out), "--json"]) == 0
        metrics.append(json.loads(capsys.readouterr().out.splitlines()[-1])["smape"])
    assert metrics[0] == metrics[1]  # was: the season's phase taken from ds units (t % 12)


def test_a_model_trained_on_unix_times_as_integers_still_forecasts(tmp_path):
    import rnnkit
    from rnnkit.cli import main
    from rnnkit.data.series import read_long_csv

    start = 1_425_168_000
    path = tmp_path / "sensor.csv"
    rows = [f"a,{start + 3600 * h},{h % 24}" for h in range(120)]
    path.write_text("unique_id,ds,y\n" + "\n".join(rows) + "\n")
    panel = read_long_csv(path, freq="3600")  # integer steps, as read before 2026-12-03
    assert panel.kind == "int"
    model = rnnkit.Forecaster(horizon=4, season=24, n_models=1, steps=2)
    model.fit_series(panel.series, panel.kind)
    rnnkit.save(model, tmp_path / "old.safetensors")
    out = tmp_path / "fc.csv"
    argv = ["forecast", str(tmp_path / "old.safetensors"), "--csv", str(path), "--out", str(out)]
    assert main(argv) == 0  # was: 'has seconds times, the model was trained on int times'
    assert out.read_text().splitlines()[1].startswith(f"a,{start + 3600 * 120},")


def test_lines_break_at_line_ends_only_not_inside_sentences(tmp_path):
    from rnnkit.data.pairs import read_pairs

    path = tmp_path / "pairs.txt"
    path.write_text("Wait\u2026 what?\tAttends\u2026 quoi ?\nHi \x85 there.\tSalut.\r\nGo.\tVa !\n")
    assert [s for s, _ in read_pairs(path)] == ["Wait\u2026 what?", "Hi \x85 there.", "Go."]
    (tmp_path / "pos").mkdir()
    (tmp_path / "neg").mkdir()
    (tmp_path / "pos" / "a.txt").write_text("one\u2028still one\ntwo\n")  # was 3 examples
    (tmp_path / "neg" / "a.txt").write_text("three\n")
    assert read_labelled(tmp_path).texts == ["three", "one\u2028still one", "two"]


def test_a_tab_file_not_named_csv_with_a_comma_in_its_header_is_still_tab_separated(tmp_path):
    # read so before semicolons were read: a tab in the header of a .txt file made it a TSV
    path = tmp_path / "reviews.txt"
    path.write_text("text\tlabel (pos, neg)\ngood, really\tpos\nbad\tneg\n")
    data = read_labelled(path, label_column="label (pos, neg)")
    assert data.texts == ["good, really", "bad"] and data.labels == ["pos", "neg"]


def test_a_semicolon_file_with_a_stray_separator_names_the_semicolon(tmp_path):
    from rnnkit.errors import InputError

    path = tmp_path / "reviews.csv"
    path.write_text("text;label\ngood;pos\nbad;neg;x\n")
    with pytest.raises(InputError, match="line 3 has 3 fields.*a stray semicolon"):
        read_labelled(path)


def test_monthly_unix_time_stamps_are_written_back_as_integers(tmp_path):
    from datetime import datetime, timezone

    from rnnkit.data.series import read_long_csv

    def stamp(k: int) -> int:
        return int(datetime(2020 + k // 12, k % 12 + 1, 1, tzinfo=timezone.utc).timestamp())

    path = tmp_path / "monthly.csv"
    path.write_text("unique_id,ds,y\n" + "".join(f"a,{stamp(k)},{k}\n" for k in range(30)))
    panel = read_long_csv(path)
    s = panel.series[0]
    assert panel.kind == "months" and panel.epoch
    # was 2022-07-01: a date among integers, which would not join with the user's actuals
    assert panel.format_time(int(s.times(1, offset=30)[0]), s.step) == str(stamp(30))


def test_translate_input_in_utf16_or_piped_with_a_bom_is_read(tmp_path, monkeypatch):
    import io

    from rnnkit.errors import InputError
    from rnnkit.tasks.translate import read_lines

    path = tmp_path / "in.txt"  # PowerShell's `>` writes UTF-16 with its mark
    path.write_bytes("Go.\r\nHi.\r\n".encode("utf-16"))
    assert read_lines([str(path)]) == ["Go.", "Hi."]  # was 'not valid UTF-8 (line 1)'
    monkeypatch.setattr("sys.stdin", io.StringIO("\ufeffGo.\nHi.\n"))  # cat in.txt | ...
    assert read_lines([]) == ["Go.", "Hi."]  # was '\ufeffGo.', translated as an unknown word
    path.write_bytes(b"Go.\nCaf\xe9\n")
    with pytest.raises(InputError, match="translate: .*in.txt' is not valid UTF-8 \\(line 2"):
        read_lines([str(path)])


def test_a_model_saved_before_steps_counted_the_season_forecasts_as_it_did(tmp_path, monkeypatch):
    # 9c1946e counts the position in the season in steps (ds 0, 6, 12 are steps 0, 1, 2); a
    # checkpoint written before it learned the position in ds units and must keep it (checked
    # once against a checkpoint of the code before: its forecasts to the digit, 49.9073 ...)
    import math

    import numpy as np

    import rnnkit
    import rnnkit.estimators.forecaster as forecaster
    from rnnkit.data.series import read_long_csv

    path = tmp_path / "every6.csv"
    rows = [f"s{s},{6 * i},{50 + 20 * math.sin(i / 2 + s):.3f}" for s in (0, 1) for i in range(80)]
    path.write_text("unique_id,ds,y\n" + "\n".join(rows) + "\n")
    panel = read_long_csv(path)
    model = rnnkit.Forecaster(horizon=4, season=12, n_models=1, steps=2)
    model.fit_series(panel.series, panel.kind)
    meta = model._metadata()
    meta["learned"].pop("season_in_steps", None)  # as written before 2026-12-03
    rnnkit.save(model.model_, tmp_path / "old.safetensors", metadata=meta)
    rnnkit.save(model, tmp_path / "new.safetensors")
    seen: list[np.ndarray] = []
    real = forecaster.calendar
    monkeypatch.setattr(forecaster, "calendar", lambda k, s, t: seen.append(t) or real(k, s, t))
    for name, unit in (("old", 6), ("new", 1)):
        seen.clear()
        rnnkit.load(tmp_path / f"{name}.safetensors").forecast_series(panel.series, [])
        t0 = seen[-1]  # the first step forecast: 80 steps after ds 0
        assert np.all(t0 == 80 * unit), name


def test_a_quoted_column_name_with_a_comma_does_not_decide_the_separator(tmp_path):
    from rnnkit.data.series import read_long_csv

    path = tmp_path / "sales.csv"  # a spreadsheet's semicolon CSV, a header naming the unit
    path.write_text('unique_id;ds;y;"price, EUR"\na;1;3,5;1,25\na;2;4;1,5\n')
    panel = read_long_csv(path)  # was: no column 'unique_id' (split at the quoted comma)
    assert panel.covariate_names == ["price, EUR"]
    assert panel.series[0].values.tolist() == [3.5, 4.0]
    assert panel.series[0].covariates[:, 0].tolist() == [1.25, 1.5]


def test_an_integer_time_too_large_for_64_bits_is_one_line(tmp_path):
    from rnnkit.data.series import read_long_csv
    from rnnkit.errors import InputError

    path = tmp_path / "big.csv"
    path.write_text("unique_id,ds,y\na,1,1\na,100000000000000000000,3\n")
    with pytest.raises(InputError, match="line 3, column 'ds'"):  # was an OverflowError
        read_long_csv(path)


def test_a_classifier_saved_on_decomposed_labels_evaluates_composed_ones(tmp_path):
    import unicodedata

    import rnnkit
    from rnnkit.tasks.classify import evaluate

    mac = unicodedata.normalize("NFD", "zwölf")  # as the labels of a model saved before
    texts, labels = ["ab", "ba", "aa", "bb"] * 4, [mac, "eins"] * 8
    clf = rnnkit.SequenceClassifier(hidden_size=4, embedding_dim=4, steps=1, patience=None)
    rnnkit.save(clf.fit(texts, labels), tmp_path / "old.safetensors")
    table = tmp_path / "test.csv"
    table.write_text("text,label\nab,zwölf\nba,eins\n", encoding="utf-8")
    result = evaluate(str(tmp_path / "old.safetensors"), str(table), "text", "label")
    assert sum(map(sum, result["confusion"])) == 2  # both rows counted; was "never saw"
    assert rnnkit.load(tmp_path / "old.safetensors").classes_.tolist() == ["eins", "zwölf"]


@pytest.mark.parametrize(
    "first, second, read",
    [
        ("1.000", "2,5", [1000.0, 2.5]),  # a decimal comma in the column: dots group thousands
        ("1.000", "1.234.567,5", [1000.0, 1234567.5]),
        ("1.000", "500", [1000.0, 500.0]),  # a whole number beside: grouped whole numbers
        ("1.000", "1.234.567", [1000.0, 1234567.0]),
        ("1.000", "12.500", [1.0, 12.5]),  # nothing shows the locale: decimal points
        ("1.000", "2.5", [1.0, 2.5]),  # a dot that groups nothing: decimal points
        ("1.000", "0.125", [1.0, 0.125]),
    ],
    ids=str,
)
def test_a_dot_in_a_semicolon_file_is_read_as_its_column_writes_it(tmp_path, first, second, read):
    from rnnkit.data.detect_csv import read_series
    from rnnkit.data.series import read_long_csv

    long = tmp_path / "sales.csv"
    long.write_text(f"unique_id;ds;y;price\na;1;{first};{first}\na;2;{second};{second}\n")
    panel = read_long_csv(long)
    assert panel.series[0].values.tolist() == read  # 1.000 was 1.0 beside 2,5
    assert panel.series[0].covariates[:, 0].tolist() == read
    nab = tmp_path / "nab.csv"
    nab.write_text(f"timestamp;value\n2014-07-01 00:00;{first}\n2014-07-01 00:05;{second}\n")
    assert read_series(nab)[0][0].values == read


def test_a_quote_in_a_tsv_field_is_text_unless_it_quotes_the_whole_field(tmp_path):
    from rnnkit.data.detect_csv import read_series
    from rnnkit.data.series import read_long_csv

    path = tmp_path / "reviews.tsv"
    path.write_text(
        'text\tlabel\n"Best film ever" he said\tpos\n"unclosed, on its own\tneg\n'
        'as spreadsheets quote "a ""b"" c"\tpos\n"a ""b"" c"\tneg\n'
        '"two lines\nin one cell, and a\ttab"\tpos\nlast\tneg\n'
    )
    data = read_labelled(path)
    assert data.texts == [  # the first was 'Best film ever he said', the second ate the rest
        '"Best film ever" he said',
        '"unclosed, on its own',
        'as spreadsheets quote "a ""b"" c"',
        'a "b" c',
        "two lines\nin one cell, and a\ttab",  # as Excel saves a cell with a line break
        "last",
    ]
    assert data.labels == ["pos", "neg", "pos", "neg", "pos", "neg"]
    assert data.where[-1].endswith("line 8")  # lines counted through the cell's line break
    long = tmp_path / "sales.tsv"
    long.write_text('unique_id\tds\ty\n"a\t1\t1\n"a\t2\t2\n')
    assert read_long_csv(long).series[0].uid == '"a'
    nab = tmp_path / "nab.tsv"
    nab.write_text('id\ttimestamp\tvalue\n"x\t1\t1\n"x\t2\t"3"\n')
    assert read_series(nab, id_column="id")[0][0].values == [1.0, 3.0]


def test_a_forecast_file_of_one_row_per_series_needs_freq_for_time_stamps(tmp_path):
    from rnnkit.data.series import read_long_csv
    from rnnkit.errors import InputError

    path = tmp_path / "sales.csv"
    path.write_text("unique_id,ds,y\na,2024-01-01,1\nb,2024-01-01,2\n")
    with pytest.raises(InputError, match="every series has one row.*or --freq"):
        read_long_csv(path)  # was a step of one second
    assert read_long_csv(path, freq="D").series[0].step == 86400
    steps = tmp_path / "steps.csv"
    steps.write_text("unique_id,ds,y\na,5,1\nb,7,2\n")
    assert [s.step for s in read_long_csv(steps).series] == [1, 1]  # integer steps: step 1


@pytest.mark.parametrize("data_size", [0, None], ids=["data size 0", "data size set"])
def test_a_wav_whose_writer_never_filled_in_its_sizes_is_read_to_its_end(tmp_path, data_size):
    import struct

    import numpy as np

    from rnnkit.audio.wav import read_wav

    x = (0.5 * np.sin(np.arange(800) / 3) * 32767).astype("<i2")
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    size = len(x.tobytes()) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size)
    path = tmp_path / "recording.wav"  # RIFF size 0: a recorder stopped before closing it
    path.write_bytes(b"RIFF" + struct.pack("<I", 0) + body + x.tobytes())
    samples = read_wav(path)  # was "a chunk before the samples is malformed"
    np.testing.assert_allclose(samples, x / 32768.0)


def test_a_manifest_path_in_another_case_finds_the_one_file_of_that_name(tmp_path):
    from rnnkit.errors import InputError

    (tmp_path / "audio").mkdir()
    _wav24_with_list_chunk(tmp_path / "audio" / "a.wav", 8000, _tone())
    _wav24_with_list_chunk(tmp_path / "audio" / "b.wav", 8000, _tone())
    _wav24_with_list_chunk(tmp_path / "audio" / "B.wav", 8000, _tone())
    manifest = tmp_path / "train.csv"  # written on Windows or macOS, whose disks ignore case
    manifest.write_text("path,label\nAudio/A.WAV,x\n")
    assert read_labelled(manifest).texts == [str(tmp_path / "audio" / "a.wav")]  # was an error
    manifest.write_text("path,label\nAudio/A.WAV,x\naudio/b.WAV,y\n")  # b.wav or B.wav?
    with pytest.raises(InputError, match="line 3: no such audio file"):
        read_labelled(manifest)


def _tone():
    import numpy as np

    return 0.5 * np.sin(np.arange(800) / 3)


def test_stream_audio_on_stdin_reads_a_wav_header_and_refuses_another_format(tmp_path):
    import io

    import numpy as np
    from scipy.io import wavfile

    from rnnkit.errors import InputError
    from rnnkit.tasks.speech_stream import pcm_chunks

    x = (0.5 * np.sin(np.arange(800) / 3) * 32767).astype("<i2")
    wavfile.write(tmp_path / "mono.wav", 8000, x)  # as `arecord -t wav` pipes it
    chunks = pcm_chunks(io.BytesIO((tmp_path / "mono.wav").read_bytes()), 80, 8000)
    np.testing.assert_array_equal(np.concatenate(list(chunks)), x / 32768.0)  # was 22 more
    wavfile.write(tmp_path / "stereo.wav", 44100, np.stack([x, x], 1))
    with pytest.raises(InputError, match="2 channel.*16-bit PCM at 44100 Hz; expected 16-bit"):
        list(pcm_chunks(io.BytesIO((tmp_path / "stereo.wav").read_bytes()), 80, 8000))


def test_a_transcript_manifest_names_its_own_options_and_warns_of_unwritable_text(tmp_path):
    import warnings

    from rnnkit.data.labelled import Labelled
    from rnnkit.errors import InputError, RnnkitWarning
    from rnnkit.estimators.transcriber import Transcriber
    from rnnkit.tasks.transcribe import _warn_unwritable, read_manifest

    _wav24_with_list_chunk(tmp_path / "a.wav", 8000, _tone())
    manifest = tmp_path / "test.csv"
    manifest.write_text("path,text\na.wav,one\n")
    with pytest.raises(InputError, match="no column 'transcript'.*with --transcript-column"):
        read_manifest(str(manifest), "transcript", "--test")  # was --text-column/--label-column
    manifest.write_text("file,transcript\na.wav,one\n")
    with pytest.raises(InputError, match="no column 'path'"):  # was no column 'text'
        read_manifest(str(manifest), "transcript", "--test")
    manifest.write_text("path,transcript\na.wav,\n")
    with pytest.raises(InputError, match="line 2 has an empty transcript"):
        read_manifest(str(manifest), "transcript", "--test")
    model = Transcriber()
    model.alphabet_ = "enoz"
    data = Labelled([str(tmp_path / "a.wav")], ["ONE"], ["x line 2"], "test.csv", True)
    with pytest.warns(RnnkitWarning, match=r"cannot write \('E', 'N', 'O'\).*writes 'enoz'"):
        _warn_unwritable(model, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_unwritable(model, Labelled(["a"], ["one"], ["x"], "test.csv", True))


@pytest.mark.parametrize(
    "reverse, read", [(False, ["Go.", "", "Hi."]), (True, ["Va !", "", "Salut."])]
)
def test_translate_given_a_pairs_file_reads_the_models_source_column(tmp_path, reverse, read):
    import rnnkit
    from rnnkit.errors import RnnkitWarning
    from rnnkit.tasks.translate import source_side

    path = tmp_path / "m.safetensors"
    rnnkit.save(rnnkit.GRU(2, 2), path, metadata={"run": {"reverse": reverse}})
    lines = ["Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org", "", "Hi.\tSalut."]
    with pytest.warns(RnnkitWarning, match=f"translating column {int(reverse) + 1}"):
        assert source_side(lines, str(path)) == read  # was the whole line, tabs and all
    assert source_side(["Go.", "a\tb"], str(path)) == ["Go.", "a\tb"]  # not every line: as is


def test_a_midi_file_cut_off_or_empty_says_so(tmp_path):
    import struct

    from rnnkit.data.music import read_midi
    from rnnkit.errors import InputError

    events = b"\x00\x90\x3c\x40\x60\x3c\x00\x00\xff\x2f\x00"  # running status, then the end
    track = b"MTrk" + struct.pack(">I", len(events)) + events
    (tmp_path / "cut.mid").write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 96) + track[:-4])
    (tmp_path / "empty.mid").write_bytes(b"")
    with pytest.raises(InputError, match="cut.mid' is not a readable MIDI file .*cut off\\?"):
        read_midi(tmp_path / "cut.mid")  # was "(EOFError)"
    with pytest.raises(InputError, match="empty.mid' is not a readable MIDI file \\(it is empty"):
        read_midi(tmp_path / "empty.mid")


def test_constant_and_all_zero_series_are_left_out_of_mase_not_infinite(tmp_path):
    import math

    import numpy as np

    from rnnkit.forecast_metrics import mase, score_forecasts

    t = np.arange(48.0)
    wave = 10 + np.sin(2 * np.pi * t / 12)
    hist = [wave[:36], np.full(36, 5.0), np.zeros(36)]
    actual = [wave[36:], np.full(12, 5.0), np.zeros(12)]
    forecast = [wave[36:] + 0.5, np.full(12, 5.5), np.full(12, 0.1)]
    s = score_forecasts(hist, actual, forecast, 12, forecast, [f + 1 for f in forecast])
    assert s.flat == 2 and s.series == 3
    assert s.mase == pytest.approx(mase(actual[0], forecast[0], hist[0], 12))  # was infinity
    assert math.isfinite(s.owa) and math.isfinite(s.msis)
    flat = score_forecasts(hist[1:], actual[1:], forecast[1:], 12)  # was ZeroDivisionError
    assert flat.flat == 2 and math.isnan(flat.mase) and math.isnan(flat.owa)


def test_a_recording_too_short_for_its_transcript_is_named_not_a_ctc_error():
    import numpy as np

    from rnnkit.errors import InputError
    from rnnkit.estimators.transcriber import CTCObjective, Transcriber

    X = [np.ones((40, 3), np.float32), np.ones((3, 3), np.float32)]  # 0.03 s: 2 steps of 2
    with pytest.raises(InputError, match=r"X\[1\]: 3 feature frame\(s\), 2 step\(s\) of 2, for a"):
        Transcriber(stack=2).fit(X, ["one", "zero"])  # was ctc_loss: target 4 > input 2
    logits = np.zeros((5, 2, 4))  # a speed-perturbed copy of 2 steps in a batch: left out
    loss, grad = CTCObjective._loss(
        None, logits, np.array([5, 2]), [np.array([1, 2]), np.array([1, 2, 3])]
    )
    assert np.isfinite(loss) and np.all(grad[:, 1] == 0) and np.any(grad[:, 0] != 0)


def test_an_rf64_wav_as_recorders_write_long_takes_is_read(tmp_path):
    import struct

    import numpy as np

    from rnnkit.audio.wav import read_wav

    x = (0.5 * np.sin(np.arange(800) / 3) * 32767).astype("<i2")
    data = x.tobytes()
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    ds64 = b"ds64" + struct.pack("<IQQQI", 28, 36 + len(data), len(data), len(x), 0)
    body = b"WAVE" + ds64 + fmt + b"data" + b"\xff\xff\xff\xff" + data
    path = tmp_path / "take.wav"
    path.write_bytes(b"RF64" + b"\xff\xff\xff\xff" + body)
    np.testing.assert_allclose(read_wav(path), x / 32768.0)  # was "not a WAV file"


def test_predict_and_transcribe_take_a_folder_of_recordings(tmp_path):
    from rnnkit.audio.files import wav_paths
    from rnnkit.errors import InputError

    (tmp_path / "takes" / "day 2").mkdir(parents=True)
    for name in ("b.wav", "A.WAV", "notes.txt", ".hidden.wav", "day 2/c.wav"):
        (tmp_path / "takes" / name).write_bytes(b"RIFF")
    (tmp_path / "empty").mkdir()
    one = str(tmp_path / "one.wav")
    found = wav_paths([one, str(tmp_path / "takes")], "predict")
    assert found == [one] + [str(tmp_path / "takes" / n) for n in ("A.WAV", "b.wav", "day 2/c.wav")]
    with pytest.raises(InputError, match="predict: the folder .*empty' holds no .wav files"):
        wav_paths([str(tmp_path / "empty")], "predict")  # was "no such file"
    from rnnkit.audio.wav import read_wav

    with pytest.raises(InputError, match="--audio: .*empty' is a folder; expected a .wav file"):
        read_wav(tmp_path / "empty", what="--audio")  # stream --audio: was "no such file"


def test_a_music_json_of_voices_reads_minus_one_as_a_resting_voice(tmp_path):
    import json

    from rnnkit.data.music import read_json

    path = tmp_path / "satb16.json"  # the voice-separated JSB file: one pitch per voice
    path.write_text(json.dumps({"train": [[[65, 60, 57, 53], [65, -1, 57, 53], [-1, -1, -1, -1]]]}))
    roll = read_json(path)["train"][0]  # was "pitch -1 is outside the piano"
    assert [sorted(int(k) + 21 for k in row.nonzero()[0]) for row in roll] == [
        [53, 57, 60, 65],
        [53, 57, 65],
        [],
    ]


def test_tatoebas_own_download_of_pairs_is_read_without_its_sentence_numbers(tmp_path):
    from rnnkit.data.pairs import read_pairs
    from rnnkit.errors import RnnkitWarning

    path = tmp_path / "Sentence pairs in English-German.tsv"
    path.write_text(
        "1276\tLet's try something.\t77\tLass uns etwas versuchen!\n"
        "1277\tI have to go to sleep.\t7808\tIch muss schlafen gehen.\n"
        "1280\tToday is June 18th an"  # cut off where the download stopped
    )
    with pytest.warns(RnnkitWarning, match="line 3 looks cut off"):
        pairs = read_pairs(path)  # was ('1276', "Let's try something.")
    assert pairs == [
        ("Let's try something.", "Lass uns etwas versuchen!"),
        ("I have to go to sleep.", "Ich muss schlafen gehen."),
    ]
    with pytest.warns(RnnkitWarning):
        reverse = read_pairs(path, reverse=True)
    assert reverse[0] == (
        "Lass uns etwas versuchen!",
        "Let's try something.",
    )


def test_a_decimal_comma_in_one_column_makes_dots_group_thousands_in_the_others(tmp_path):
    from rnnkit.data.series import read_long_csv

    path = tmp_path / "sales.csv"  # as a spreadsheet in a comma-decimal locale writes it
    path.write_text("unique_id;ds;y;price\na;1;1.000;2,5\na;2;12.500;3,25\n")
    s = read_long_csv(path).series[0]
    assert s.values.tolist() == [1000.0, 12500.0] and s.covariates[:, 0].tolist() == [2.5, 3.25]


def test_an_anki_export_with_its_header_lines_and_deck_columns_is_read(tmp_path):
    from rnnkit.data.pairs import read_pairs
    from rnnkit.errors import InputError

    path = tmp_path / "Deutsch.txt"  # Anki: Export, Notes in Plain Text, deck and note type on
    path.write_text(
        "#separator:tab\n#html:false\n#notetype column:1\n#deck column:2\n#tags column:5\n"
        "Basic\tDeutsch\tGood morning.\tGuten Morgen.\tgreetings\n"
        "Basic\tDeutsch\tThank you.\tDanke.\t\n"
    )
    assert read_pairs(path) == [  # was "line 1 has no tab"
        ("Good morning.", "Guten Morgen."),
        ("Thank you.", "Danke."),
    ]
    path.write_text("#separator:comma\nGood morning.,Guten Morgen.\n")
    with pytest.raises(InputError, match="line 1 says '#separator:comma'; expected tab-sep"):
        read_pairs(path)


def test_a_forecast_file_of_one_series_may_leave_out_the_id_column(tmp_path):
    from rnnkit.data.series import read_long_csv
    from rnnkit.errors import InputError

    path = tmp_path / "shop sales.csv"
    path.write_text("ds,y\n2024-01-01,5\n2024-01-02,6\n2024-01-03,7\n")
    panel = read_long_csv(path)  # was "has no column 'unique_id'"
    assert [s.uid for s in panel.series] == ["shop sales"]
    assert panel.series[0].values.tolist() == [5.0, 6.0, 7.0] and panel.series[0].step == 86400
    with pytest.raises(InputError, match="has no column 'store'"):  # named: it must be there
        read_long_csv(path, id_column="store")


def test_a_csv_of_pairs_as_kaggle_has_english_french_is_read(tmp_path):
    from rnnkit.data.pairs import read_pairs
    from rnnkit.errors import InputError

    path = tmp_path / "eng_-french.csv"
    path.write_text(
        "English words/sentences,French words/sentences\r\nHi.,Salut!\r\n"
        '"Wait, please.","Attends, s\'il te plaît."\r\n\r\n'
    )
    assert read_pairs(path) == [  # was "line 1 has no tab"
        ("Hi.", "Salut!"),
        ("Wait, please.", "Attends, s'il te plaît."),
    ]
    path.write_text("en,fr\nHi.,Salut!\nalone\n")
    with pytest.raises(InputError, match="line 3 has one column; expected source,target"):
        read_pairs(path)


def test_a_stray_series_of_a_few_rows_does_not_shrink_the_others_probation(tmp_path):
    from rnnkit.tasks.detect import detect_csv

    rows = [f"a,{k},{(k * 7) % 11}" for k in range(400)] + [f"b,{k},1" for k in range(5)]
    src = tmp_path / "sites.csv"
    src.write_text("site,timestamp,value\n" + "\n".join(rows) + "\n")
    small = {"members": 1, "steps": 2, "hidden_size": 2}
    result = detect_csv(str(src), str(tmp_path / "o.csv"), id_column="site", detector=small)
    assert result["probation"] == 60  # 15 % of a's 400 rows; was 16, b's 5 rows counted


def test_monthly_stamps_of_a_year_and_month_alone_are_read_and_written_so(tmp_path):
    from rnnkit.data.series import read_long_csv

    path = tmp_path / "airline.csv"  # as the airline passengers set writes its months
    path.write_text("Month,Passengers\n1949-01,112\n1949-02,118\n1949-03,132\n")
    panel = read_long_csv(path, time_column="Month", target_column="Passengers")
    s = panel.series[0]  # was "expected a time stamp (ISO 8601)", got '1949-01'
    assert panel.kind == "months" and s.step == 1 and s.values.tolist() == [112, 118, 132]
    assert panel.format_time(int(s.times(1, offset=3)[0]), s.step) == "1949-04"
    quarters = tmp_path / "gdp.csv"  # as pandas writes a quarterly PeriodIndex
    quarters.write_text("ds,y\n2023Q3,1\n2023Q4,2\n2024Q1,3\n")
    panel = read_long_csv(quarters)
    s = panel.series[0]  # was "expected a time stamp (ISO 8601)", got '2023Q3'
    assert panel.kind == "months" and s.step == 3
    assert panel.format_time(int(s.times(1, offset=3)[0]), s.step) == "2024Q2"


def test_a_deepspeech_or_nemo_manifest_names_its_audio_column_its_own_way(tmp_path):
    from rnnkit.tasks.transcribe import read_manifest

    _wav24_with_list_chunk(tmp_path / "a.wav", 8000, _tone())
    manifest = tmp_path / "train.csv"  # DeepSpeech/Coqui's layout
    manifest.write_text("wav_filename,wav_filesize,transcript\na.wav,1234,one two\n")
    data = read_manifest(str(manifest), "transcript", "--train")  # was "no column 'path'"
    assert data.audio and data.texts == [str(tmp_path / "a.wav")] and data.labels == ["one two"]
    manifest.write_text("audio_filepath,label\na.wav,yes\n")  # NeMo's name, for a classifier
    assert read_labelled(manifest).texts == [str(tmp_path / "a.wav")]


def test_files_joined_with_their_headers_pass_the_repeated_header_over(tmp_path):
    from rnnkit.data.detect_csv import read_series
    from rnnkit.data.series import read_long_csv
    from rnnkit.errors import RnnkitWarning

    table = tmp_path / "all.csv"  # cat part1.csv part2.csv > all.csv
    table.write_text("text,label\ngood,pos\nbad,neg\ntext,label\nfine,pos\n")
    with pytest.warns(RnnkitWarning, match="line 4 repeats the header"):
        data = read_labelled(table)
    assert data.labels == ["pos", "neg", "pos"]  # was a fourth example of a class 'label'
    long = tmp_path / "sales.csv"
    long.write_text("unique_id,ds,y\na,1,1\na,2,2\nunique_id,ds,y\nb,1,3\nb,2,4\n")
    with pytest.warns(RnnkitWarning, match="line 4 repeats the header"):
        assert [s.uid for s in read_long_csv(long).series] == ["a", "b"]  # was an error
    nab = tmp_path / "nab.csv"
    nab.write_text("timestamp,value\n1,1\n2,2\ntimestamp,value\n3,3\n")
    with pytest.warns(RnnkitWarning, match="row 4 repeats the header"):
        assert read_series(nab)[0][0].values == [1.0, 2.0, 3.0]


def test_predict_given_the_labelled_csv_reads_its_text_column(tmp_path):
    from rnnkit.errors import InputError
    from rnnkit.tasks.classify import read_lines

    table = tmp_path / "test.csv"
    table.write_text('id,text,label\n1,"good, fine film",pos\n\n2,bad,neg\n')
    assert read_lines([str(table)], None) == ["good, fine film", "bad"]  # was 4 lines, header too
    tsv = tmp_path / "test.tsv"
    tsv.write_text('Text\tlabel\n"Best film ever" he said\tpos\n')
    assert read_lines([str(tsv)], None) == ['"Best film ever" he said']
    (tmp_path / "other.csv").write_text("review,stars\nfine,5\n")
    with pytest.raises(InputError, match="other.csv' has no column 'text'"):
        read_lines([str(tmp_path / "other.csv")], None)


def test_pairs_files_joined_with_their_headers_pass_the_repeated_header_over(tmp_path):
    from rnnkit.data.pairs import read_pairs
    from rnnkit.errors import RnnkitWarning

    path = tmp_path / "all.txt"  # cat deu1.txt deu2.txt > all.txt
    path.write_text("English\tGerman\nHi.\tHallo!\nEnglish\tGerman\nRun!\tLauf!\n")
    with pytest.warns(RnnkitWarning, match="line 3 repeats the header"):
        assert read_pairs(path) == [("Hi.", "Hallo!"), ("Run!", "Lauf!")]  # was a pair


def test_transcripts_with_runs_of_white_space_are_read_with_one_space(tmp_path):
    from rnnkit.tasks.transcribe import read_manifest

    _wav24_with_list_chunk(tmp_path / "a.wav", 8000, _tone())
    manifest = tmp_path / "train.csv"
    manifest.write_text('path,transcript\na.wav,"four  one\tseven\n two"\n')
    data = read_manifest(str(manifest), "transcript", "--train")
    assert data.labels == ["four one seven two"]  # was two spaces, a tab and a line break


def test_a_music_json_of_one_piece_or_with_other_split_names_is_read(tmp_path):
    import json

    from rnnkit.data.music import read_json

    one = tmp_path / "piece.json"  # one piece: a list of steps
    one.write_text(json.dumps([[60, 64], [], [62]]))
    assert [r.shape for r in read_json(one)["all"]] == [(3, 88)]  # was "got int"
    named = tmp_path / "split.json"
    named.write_text(json.dumps({"training": [[[60], [62]]], "Validation": [[[64], [65]]]}))
    assert sorted(read_json(named)) == ["train", "valid"]  # was "holds ['training', ...]"


# -- dates as spreadsheets write them -----------------------------------------------------------
@pytest.mark.parametrize(
    "column, first",
    [
        (["31/01/2024", "01/02/2024"], True),
        (["01/31/2024", "02/01/2024"], False),
        (["01.02.2024", "02.02.2024"], True),  # dots: day first
        (["2024-01-31", "x"], None),
    ],
)
def test_the_day_order_of_a_date_column_is_decided_from_all_its_dates(column, first):
    from rnnkit.data.dates import day_first

    assert day_first(column, "f.csv") is first


@pytest.mark.parametrize(
    "column, message",
    [
        (["01/02/2024", "02/02/2024"], "alike"),
        (["13/01/2024", "01/13/2024"], "day first .*'13/01/2024'.* month first .*'01/13/2024'"),
    ],
)
def test_a_date_column_that_cannot_be_decided_is_one_line(column, message):
    from rnnkit.data.dates import day_first
    from rnnkit.errors import InputError

    with pytest.raises(InputError, match=f"f.csv, column 'ds': dates .*{message}") as info:
        day_first(column, "f.csv, column 'ds'")
    assert "\n" not in str(info.value) and "ISO 8601" in str(info.value)


@pytest.mark.parametrize(
    "text, first, written",
    [
        ("31/01/2024 13:05", True, "2024-01-31 13:05"),
        ("1/31/2024 1:05 PM", False, "2024-01-31 13:05"),
        ("1/31/2024 12:30:10 a.m.", False, "2024-01-31 00:30:10"),
        ("31.01.2024 9:00", True, "2024-01-31 09:00"),
        ("2024-01-31 13:05", True, "2024-01-31 13:05"),
    ],
)
def test_spreadsheet_dates_are_rewritten_as_iso(text, first, written):
    from rnnkit.data.dates import iso

    assert iso(text, first) == written


def test_a_forecast_file_with_day_first_dates_reads_as_its_iso_twin(tmp_path):
    from rnnkit.data.series import read_long_csv

    hours = [(d, h) for d in (30, 31) for h in range(24)] + [(1, h) for h in range(3)]
    month = lambda d: 1 if d > 2 else 2  # noqa: E731 - 30 and 31 January, then 1 February
    iso_rows = [f"a,2024-{month(d):02d}-{d:02d} {h:02d}:00,{h}" for d, h in hours]
    dmy_rows = [f"a,{d:02d}/{month(d):02d}/2024 {h}:00,{h}" for d, h in hours]
    (tmp_path / "iso.csv").write_text("unique_id,ds,y\n" + "\n".join(iso_rows) + "\n")
    (tmp_path / "dmy.csv").write_text("unique_id,ds,y\n" + "\n".join(dmy_rows) + "\n")
    a, b = read_long_csv(tmp_path / "iso.csv"), read_long_csv(tmp_path / "dmy.csv")
    assert b.series[0].step == 3600 and len(b.series[0].values) == len(hours)
    assert b.series[0].start == a.series[0].start
    assert b.series[0].values.tolist() == a.series[0].values.tolist()


def test_detect_checks_the_order_of_day_first_dates(tmp_path):
    from rnnkit.data.detect_csv import read_series
    from rnnkit.errors import InputError

    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n02/01/2024,1\n13/01/2024,2\n14/01/2024,3\n")
    series, _ = read_series(path)
    assert series[0].times == ["02/01/2024", "13/01/2024", "14/01/2024"]  # written back as read
    path.write_text("timestamp,value\n02/01/2024,1\n13/01/2024,2\n05/01/2024,3\n")
    with pytest.raises(InputError, match=r"row 4, column 'timestamp': .*'05/01/2024' comes before"):
        read_series(path)  # 5 January after 13 January; read month first it would pass


@pytest.mark.parametrize(
    "lines, message",
    [
        (["31/01/2024 10:00", "31/01/2024 11:00", "01/02/2024 09:00"], None),  # day first
        (["01/02/2024", "01/03/2024", "02/03/2024"], None),  # undecided: both readings hold
        (["02/01/2024", "01/02/2024", "13/02/2024"], None),  # month first would go back
        (["01.02.2024", "13.02.2024"], None),  # dots: day first
        (["01/02/2024", "01/13/2024", "01/14/2024"], None),  # undecided, then month first
        (["31/01/2024", "02/13/2024"], "'02/13/2024' is not a date written day first"),
        (["01/02/2024", "01/01/2024"], "'01/01/2024' comes before the previous one"),
        (["01/13/2024", "01/14/2024", "15/01/2024"], "not a date written month first"),
    ],
)
def test_detect_stream_reads_spreadsheet_dates_line_by_line(lines, message):
    from rnnkit.errors import InputError
    from rnnkit.tasks.detect import LineScorer

    scorer = LineScorer(20, {"seed": 0})
    feed = ["timestamp,value", *(f"{t},{k}" for k, t in enumerate(lines))]
    if message is None:
        answers = [scorer.handle(line) for line in feed]
        assert answers[1:] == [f"{t},{k},0" for k, t in enumerate(lines)]  # echoed as written
        return
    where = f"stdin line {len(feed)}, column 'timestamp'"
    with pytest.raises(InputError, match=f"{where}: .*{message}"):
        for line in feed:
            scorer.handle(line)


@pytest.mark.parametrize("gap", ["", "NA", "nan"])
def test_an_empty_y_between_two_values_is_filled_as_a_missing_row_is(tmp_path, gap):
    from rnnkit.data.series import read_long_csv

    rows = [f"a,{k},{k * 2 if k != 3 else gap}" for k in range(6)]
    (tmp_path / "gap.csv").write_text("unique_id,ds,y\n" + "\n".join(rows) + "\n")
    (tmp_path / "row.csv").write_text("unique_id,ds,y\n" + "\n".join(rows[:3] + rows[4:]) + "\n")
    a, b = read_long_csv(tmp_path / "gap.csv"), read_long_csv(tmp_path / "row.csv")
    assert a.series[0].values.tolist() == b.series[0].values.tolist() == [0, 2, 4, 6, 8, 10]
    assert a.series[0].filled == b.series[0].filled == 1  # counted as filled either way
