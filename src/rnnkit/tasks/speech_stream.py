"""``rnnkit stream MODEL --audio FILE.wav``: live recognition with a unidirectional transcriber.

The audio is fed one frame hop (10 ms) at a time through `LiveTranscriber` (streaming
features, the recurrent layer's state carried in a `Stream`, the greedy CTC decoder); each
word is printed as soon as its last character and the space after it (or the end of the
stream) are out, with the time into the stream at which the decoder emitted it. ``--realtime``
paces the input at the speed of speech, as from a microphone. ``--audio -`` reads raw 16-bit
little-endian mono PCM at the model's rate from standard input (a WAV header in front, as
``arecord -t wav`` writes one, is read and checked). At the end, the compute time
per frame (median, 99th percentile) is reported against the hop.
"""

from __future__ import annotations

import struct
import sys
import time
from typing import IO, Any

import numpy as np

from ..audio.wav import pcm_to_float, read_wav
from ..errors import InputError
from ..estimators.transcriber_stream import LiveTranscriber
from .transcribe import load_transcriber


def pcm_chunks(stream: IO[bytes], samples: int, rate: int | None = None) -> Any:
    """Float samples from raw 16-bit little-endian PCM, ``samples`` at a time. A stream that
    starts with a WAV header (``arecord -t wav``, ``sox ... -t wav -``) has it read and
    checked against 16-bit mono at ``rate``, then its samples go on as raw PCM."""
    leftover = _after_wav_header(stream, rate)
    while True:
        data = stream.read(2 * samples)
        if not data:
            break
        data = leftover + data
        whole = len(data) - len(data) % 2
        leftover = data[whole:]
        yield pcm_to_float(np.frombuffer(data[:whole], dtype="<i2"))


def _after_wav_header(stream: IO[bytes], rate: int | None) -> bytes:
    """The bytes after a WAV header at the start of ``stream`` (checked: PCM, 16-bit, mono,
    ``rate``), or the first bytes read when there is no header."""
    head = stream.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return head
    while True:
        chunk = stream.read(8)
        if len(chunk) < 8:
            raise InputError("--audio: standard input ends inside its WAV header")
        size = int.from_bytes(chunk[4:8], "little")
        if chunk[:4] == b"data":
            return b""
        body = stream.read(size + (size & 1))
        if chunk[:4] == b"fmt " and len(body) >= 16:
            kind, channels, got_rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if kind == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: its subformat
                kind = struct.unpack("<H", body[24:26])[0]
            if (kind, channels, bits) != (1, 1, 16) or (rate and got_rate != rate):
                raise InputError(
                    f"--audio: standard input is a WAV stream of {channels} channel(s), "
                    f"{bits}-bit {'PCM' if kind == 1 else f'format {kind}'} at {got_rate} Hz; "
                    f"expected 16-bit PCM mono at {rate} Hz (e.g. sox ... -r {rate} -c 1 "
                    "-b 16 -t wav -), or raw samples"
                )


def file_chunks(path: str, rate: int, samples: int) -> Any:
    x = read_wav(path, rate, "--audio")
    for start in range(0, len(x), samples):
        yield x[start : start + samples]


def stream_audio(
    checkpoint: str, audio: str, realtime: bool, out: IO[str], stdin: IO[bytes] | None = None
) -> dict[str, Any]:
    model, front = load_transcriber(checkpoint)
    if model.bidirectional:
        raise InputError(
            f"{checkpoint!r} is a bidirectional transcriber, which needs the whole recording; "
            "train with --no-bidirectional to stream"
        )
    # paced when the audio comes at the speed of speech (--realtime, or live on stdin)
    live = LiveTranscriber(model, front, paced=realtime or audio == "-")
    live.warm_up()  # the kernels compiled before the first frame, as a server would
    hop = front.frame_step
    chunks = (
        pcm_chunks(stdin or sys.stdin.buffer, hop, front.rate)
        if audio == "-"
        else file_chunks(audio, front.rate, hop)
    )
    words: list[str] = []
    word: list[str] = []
    start = time.perf_counter()
    heard = 0

    def emit(chars: list[tuple[str, float]], end: float | None = None) -> None:
        for c, t in chars:
            if c == " ":
                say(t)
            else:
                word.append(c)
                if model.units == "word":  # a whole word per emission
                    say(t)
        if end is not None:
            say(end)

    def say(t: float) -> None:
        if word:
            words.append("".join(word))
            out.write(f"{t:7.2f}\t{words[-1]}\n")
            out.flush()
            word.clear()

    for chunk in chunks:
        heard += len(chunk)
        if realtime:  # wait until this audio would have been heard
            time.sleep(max(0.0, heard / front.rate - (time.perf_counter() - start)))
        emit(live.push(chunk))
    if heard == 0:
        raise InputError("--audio: no samples came in; expected 16-bit PCM on standard input")
    emit(live.flush(), end=heard / front.rate)
    per_frame = np.asarray(live.timings[: max(1, heard // hop)]) * 1e3
    report = {
        "transcript": " ".join(words),
        "seconds": heard / front.rate,
        "frames": int(len(per_frame)),
        "frame_ms_median": float(np.median(per_frame)),
        "frame_ms_p99": float(np.percentile(per_frame, 99)),
        "hop_ms": 1e3 * front.hop,
    }
    print(
        f"rnnkit stream: {report['frames']} frames, compute per frame median "
        f"{report['frame_ms_median']:.3f} ms, p99 {report['frame_ms_p99']:.3f} ms "
        f"(hop {report['hop_ms']:.0f} ms)",
        file=sys.stderr,
    )
    return report
