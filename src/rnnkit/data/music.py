"""Piano rolls in and out: the JSON of the JSB Chorales (lists of MIDI pitches per step) and
MIDI files, quantised to a fixed step.

A piano roll is a ``(T, 88)`` uint8 array: ``roll[t, k] = 1`` when the piano key ``k`` (MIDI
pitch ``21 + k``, A0 to C8) sounds at step ``t``. A step is ``1 / steps_per_quarter`` of a
quarter note (the JSB set of Boulanger-Lewandowski et al. 2012 is at quarter notes: 1).

- JSON: ``{"train": [piece, ...], "valid": [...], "test": [...]}`` (any of the three parts)
  or a bare list of pieces; a piece is a list of steps, a step a list of MIDI pitches (``-1``
  is a voice that rests, as in the voice-separated JSB file of 16th notes, one pitch per voice);
- MIDI: read with mido (``pip install rnnkit[music]``); a note sounds from its onset step to its
  offset step, both rounded to the nearest step, at least one step long; channel 10 (drums) is
  skipped, and so are notes outside the piano's keys (with a `RnnkitWarning`). `write_midi`
  writes each run of a key's consecutive steps as one note, so ``read_midi(write_midi(roll))``
  gives ``roll`` back exactly.

Every error is one line naming the file and what was expected.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import InputError, RnnkitWarning
from ..files import KINDS, SIGNATURE, atomic_write
from .text import visible_files

LOWEST = 21  # MIDI pitch of the lowest piano key (A0)
KEYS = 88  # piano keys: MIDI pitches 21..108
HIGHEST = LOWEST + KEYS - 1
PARTS = ("train", "valid", "test")
PART_NAMES = {"training": "train", "validation": "valid", "val": "valid", "testing": "test"}
TICKS_PER_QUARTER = 480  # of the MIDI files written
DRUMS = 9  # MIDI channel 10, counted from 0
SILENT = -1  # a resting voice, in steps written one pitch per voice (SATB)


def _is_midi(path: Path) -> bool:
    """A MIDI file rnnkit wrote: ``MThd`` first, the signature in its first track's name."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return head.startswith(b"MThd") and SIGNATURE.encode() in head


KINDS.setdefault("midi", _is_midi)  # `check_output(path, "midi")` knows rnnkit's MIDI files


def mido_module() -> Any:
    """mido, or a one-line error saying how to install it."""
    try:
        import mido
    except ImportError:
        raise InputError(
            "MIDI needs the mido package; install it with: pip install rnnkit[music]"
        ) from None
    return mido


# -- rolls and lists of pitches ----------------------------------------------------------------
def roll_from_steps(steps: Any, where: str) -> np.ndarray:
    """A piano roll from a list of steps, each a list of MIDI pitches (21..108)."""
    if not isinstance(steps, list):
        raise InputError(f"{where}: expected a list of steps, got {type(steps).__name__}")
    roll = np.zeros((len(steps), KEYS), dtype=np.uint8)
    for t, step in enumerate(steps):
        if not isinstance(step, list):
            raise InputError(
                f"{where} step {t}: expected a list of MIDI pitches, got {type(step).__name__}"
            )
        for p in step:
            if isinstance(p, bool) or not isinstance(p, (int, float)) or p != int(p):
                raise InputError(f"{where} step {t}: expected integer MIDI pitches, got {p!r}")
            if p == SILENT:
                continue  # a voice that rests (the voice-separated JSB file of 16th notes)
            if not LOWEST <= p <= HIGHEST:
                raise InputError(
                    f"{where} step {t}: pitch {int(p)} is outside the piano; expected MIDI "
                    f"pitches {LOWEST}-{HIGHEST}"
                )
            roll[t, int(p) - LOWEST] = 1
    return roll


def steps_from_roll(roll: np.ndarray) -> list[list[int]]:
    """The sounding MIDI pitches of each step, low to high."""
    return [[LOWEST + int(k) for k in np.flatnonzero(row)] for row in np.asarray(roll)]


def as_roll(x: Any, where: str) -> np.ndarray:
    """A ``(T, 88)`` 0/1 array, or a list of steps of MIDI pitches, as a uint8 piano roll."""
    if isinstance(x, list) and (not x or isinstance(x[0], list)):
        return roll_from_steps(x, where)
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[1] != KEYS:
        raise InputError(
            f"{where}: expected a piano roll of shape (T, {KEYS}) or a list of steps of MIDI "
            f"pitches, got shape {a.shape}"
        )
    if a.size and not np.all((a == 0) | (a == 1)):
        raise InputError(f"{where}: expected a piano roll of 0s and 1s")
    return a.astype(np.uint8)


# -- JSON ----------------------------------------------------------------------------------------
def read_json(path: str | Path) -> dict[str, list[np.ndarray]]:
    """The pieces of a JSON file by part (``train``, ``valid``, ``test``; ``training``,
    ``validation``/``val`` and ``testing`` are read as those); a bare list of pieces, or one
    piece (a list of steps), comes back as ``{"all": pieces}``."""
    name = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"music: no such file {name!r}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise InputError(f"music: {name!r} is not readable JSON ({reason})") from None
    shape = (
        'expected {"train": [pieces], "valid": [...], "test": [...]} or a list of pieces, '
        "each a list of steps of MIDI pitches"
    )
    if isinstance(data, dict):  # the names other splits use: training, validation, testing
        data = {PART_NAMES.get(str(k).lower(), k): v for k, v in data.items()}
    if isinstance(data, list) and data and isinstance(data[0], list) and _is_step(data[0]):
        parts = {"all": [data]}  # one piece: a list of steps
    elif isinstance(data, list):
        parts = {"all": data}
    elif isinstance(data, dict) and data and set(data) <= set(PARTS):
        parts = data
    else:
        keys = sorted(data)[:5] if isinstance(data, dict) else type(data).__name__
        raise InputError(f"music: {name!r} holds {keys}; {shape}")
    out: dict[str, list[np.ndarray]] = {}
    for part, pieces in parts.items():
        if not isinstance(pieces, list) or not pieces:
            raise InputError(f"music: {name!r} part {part!r} holds no list of pieces; {shape}")
        rolls = []
        for i, piece in enumerate(pieces):
            roll = roll_from_steps(piece, f"music: {name!r} {part}[{i}]")
            if len(roll) < 2:
                raise InputError(
                    f"music: {name!r} {part}[{i}] has {len(roll)} steps; expected at least 2"
                )
            rolls.append(roll)
        out[part] = rolls
    return out


def _is_step(x: list) -> bool:
    """A step (MIDI pitches), not a piece (steps): empty, or numbers."""
    return all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in x)


# -- MIDI ----------------------------------------------------------------------------------------
def read_midi(path: str | Path, steps_per_quarter: int = 1) -> np.ndarray:
    """The piano roll of a MIDI file, quantised to ``steps_per_quarter`` steps per quarter."""
    mido = mido_module()
    name = str(path)
    if not Path(path).is_file():
        raise InputError(f"music: no such MIDI file {name!r}")
    try:
        mid = mido.MidiFile(name, clip=True)
        tpq = mid.ticks_per_beat
        events = list(mido.merge_tracks(mid.tracks))
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        if isinstance(exc, EOFError):  # mido says no more than that
            reason = (
                "it is empty"
                if Path(path).stat().st_size == 0
                else "it ends inside a track, or before all the tracks its header counts: cut off?"
            )
        raise InputError(f"music: {name!r} is not a readable MIDI file ({reason})") from None
    if not isinstance(tpq, int) or tpq <= 0:
        raise InputError(
            f"music: {name!r} times its events in SMPTE frames; expected ticks per quarter note"
        )
    step = tpq / steps_per_quarter
    tick = 0
    sounding: dict[tuple[int, int], list[int]] = {}  # (channel, pitch) -> onset ticks
    notes: list[tuple[int, int, int]] = []  # pitch, onset tick, offset tick
    for msg in events:
        tick += msg.time
        if msg.type not in ("note_on", "note_off") or msg.channel == DRUMS:
            continue
        key = (msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.setdefault(key, []).append(tick)
        elif sounding.get(key):
            notes.append((msg.note, sounding[key].pop(0), tick))
    notes += [(p, on, tick) for (_, p), ons in sounding.items() for on in ons]  # never ended
    if not notes:
        raise InputError(f"music: {name!r} holds no notes; expected a MIDI file with notes")
    outside = sorted({p for p, _, _ in notes if not LOWEST <= p <= HIGHEST})
    if outside:  # a stray effect or an organ pedal note should not cost the whole piece
        kept = [n for n in notes if LOWEST <= n[0] <= HIGHEST]
        if not kept:
            raise InputError(
                f"music: {name!r} holds no notes on the piano (pitches {outside[0]}-"
                f"{outside[-1]}); expected MIDI pitches {LOWEST}-{HIGHEST}"
            )
        warnings.warn(
            f"music: {name!r} holds {len(notes) - len(kept)} note(s) outside the piano "
            f"(pitch {', '.join(map(str, outside[:5]))}); left out, as only MIDI pitches "
            f"{LOWEST}-{HIGHEST} are modelled",
            RnnkitWarning,
            stacklevel=2,
        )
        notes = kept
    spans = [(p, round(on / step), round(off / step)) for p, on, off in notes]
    length = max(round(tick / step), *(max(off, on + 1) for _, on, off in spans))
    roll = np.zeros((length, KEYS), dtype=np.uint8)
    for p, on, off in spans:
        roll[on : max(off, on + 1), p - LOWEST] = 1
    return roll


def write_midi(
    roll: np.ndarray,
    path: str | Path,
    steps_per_quarter: int = 1,
    bpm: float = 80.0,
    velocity: int = 80,
    program: int = 0,
) -> Path:
    """Write a piano roll as a one-track MIDI file (atomically); each run of a key's steps is
    one note. ``program`` is the General MIDI instrument (0: acoustic grand piano)."""
    mido = mido_module()
    roll = np.asarray(roll)
    if TICKS_PER_QUARTER % steps_per_quarter:
        raise InputError(
            f"write_midi: steps_per_quarter must divide {TICKS_PER_QUARTER}, got "
            f"{steps_per_quarter}"
        )
    step = TICKS_PER_QUARTER // steps_per_quarter
    events: list[tuple[int, int, int]] = []  # tick, 0 off / 1 on, pitch
    padded = np.zeros((len(roll) + 2, KEYS), dtype=np.int8)
    padded[1:-1] = roll != 0
    change = np.diff(padded, axis=0)  # +1: a note starts at step t, -1: one ends at step t
    for t, k in zip(*np.nonzero(change), strict=True):
        events.append((int(t) * step, 1 if change[t, k] > 0 else 0, LOWEST + int(k)))
    events.sort()  # offs before ons at the same tick
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=f"{SIGNATURE} {__version__}", time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    now = 0
    for tick, on, pitch in events:
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=velocity, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=len(roll) * step - now))
    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_QUARTER)
    mid.tracks.append(track)
    return atomic_write(path, lambda tmp: mid.save(tmp), "write_midi")


# -- what a run reads ------------------------------------------------------------------------------
def read_music(path: str | Path, steps_per_quarter: int = 1) -> dict[str, list[np.ndarray]]:
    """A JSON file (`read_json`), one MIDI file, or a folder of ``.mid``/``.midi`` files (read
    in sorted order) as ``{"all": rolls}``; one-line errors name the file."""
    p = Path(path)
    if p.is_dir():
        files = visible_files(p, (".mid", ".midi"))  # not macOS's ._x.mid twins
        if not files:
            raise InputError(f"music: the folder {str(p)!r} holds no .mid or .midi files")
        return {"all": [_long_enough(read_midi(f, steps_per_quarter), f) for f in files]}
    if not p.exists():
        raise InputError(f"music: no such file or folder {str(p)!r}")
    if p.suffix.lower() in (".mid", ".midi"):
        return {"all": [_long_enough(read_midi(p, steps_per_quarter), p)]}
    return read_json(p)


def _long_enough(roll: np.ndarray, path: Path) -> np.ndarray:
    if len(roll) < 2:
        raise InputError(f"music: {str(path)!r} lasts {len(roll)} step; expected at least 2 steps")
    return roll


def transpose(roll: np.ndarray, shift: int) -> np.ndarray:
    """The roll moved ``shift`` semitones (notes pushed off the keyboard are dropped)."""
    out = np.zeros_like(roll)
    if shift >= 0:
        out[:, shift:] = roll[:, : KEYS - shift]
    else:
        out[:, :shift] = roll[:, -shift:]
    return out


def pitch_range(rolls: Sequence[np.ndarray]) -> tuple[int, int]:
    """The lowest and highest key index sounding in any of the rolls."""
    used = np.flatnonzero(np.any([r.any(axis=0) for r in rolls], axis=0))
    return (int(used[0]), int(used[-1])) if used.size else (0, KEYS - 1)
