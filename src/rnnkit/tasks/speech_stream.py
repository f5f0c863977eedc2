"""``rnnkit stream MODEL --audio FILE.wav``: live recognition with a unidirectional transcriber.

The audio is fed one frame hop (10 ms) at a time through `LiveTranscriber` (streaming
features, the recurrent layer's state carried in a `Stream`, the greedy CTC decoder); each
word is printed as soon as its last character and the space after it (or the end of the
stream) are out, with the time into the stream at which the decoder emitted it. ``--realtime``
paces the input at the speed of speech, as from a microphone. ``--audio -`` reads raw 16-bit
little-endian mono PCM at the model's rate from standard input. At the end, the compute time
per frame (median, 99th percentile) is reported against the hop.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

import numpy as np

from ..audio.wav import pcm_to_float, read_wav
from ..errors import InputError
from ..estimators.transcriber_stream import LiveTranscriber
from .transcribe import load_transcriber


def pcm_chunks(stream: IO[bytes], samples: int) -> Any:
    """Float samples from raw 16-bit little-endian PCM, ``samples`` at a time."""
    leftover = b""
    while True:
        data = stream.read(2 * samples)
        if not data:
            break
        data = leftover + data
        whole = len(data) - len(data) % 2
        leftover = data[whole:]
        yield pcm_to_float(np.frombuffer(data[:whole], dtype="<i2"))


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
    live = LiveTranscriber(model, front)
    live.warm_up()  # the kernels compiled before the first frame, as a server would
    hop = front.frame_step
    chunks = (
        pcm_chunks(stdin or sys.stdin.buffer, hop)
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
