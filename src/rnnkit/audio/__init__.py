"""Audio in: WAV files read and resampled (`wav`), log-mel and MFCC features with deltas, whole
files or frame by frame (`features`)."""

from .features import FrontEnd, StreamingFeatures
from .wav import read_wav

__all__ = ["FrontEnd", "StreamingFeatures", "read_wav"]
