"""The reference for `cargo bench --bench faces`: OpenCV's FaceDetectorYN + FaceRecognizerSF (opencv-python-headless)
on the same model files and the same photos as Jarvis, at a given thread count.

Usage: faces_opencv.py MODELS_DIR LIST_FILE THREADS STRATEGY
  LIST_FILE: one photo path per line. STRATEGY: `intra` (cv2.setNumThreads(THREADS), photos one after another) or
  `workers` (THREADS Python threads, cv2.setNumThreads(1) each; OpenCV releases the GIL).
Prints one JSON object: wall-clock milliseconds per photo for detection, per face for alignment + embedding, and per
photo for the whole photo -> embeddings path (decode, detect, align, embed), plus the face count.
"""
import json
import sys
import threading
import time

import cv2
import numpy as np

SIDE = 640


def letterbox(img):
    """The photo scaled to fit 640x640 at the top-left of a black square, as Jarvis's detector sees it."""
    h, w = img.shape[:2]
    s = min(SIDE / w, SIDE / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    out = np.zeros((SIDE, SIDE, 3), np.uint8)
    out[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_NEAREST)
    return out


def main():
    models, list_file, threads, strategy = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    paths = [p.strip() for p in open(list_file) if p.strip()]
    cv2.setNumThreads(threads if strategy == "intra" else 1)
    workers = threads if strategy == "workers" else 1

    def engine():
        det = cv2.FaceDetectorYN.create(f"{models}/face_detection_yunet_2023mar.onnx", "", (SIDE, SIDE), 0.9, 0.3, 50)
        rec = cv2.FaceRecognizerSF.create(f"{models}/face_recognition_sface_2021dec.onnx", "")
        return det, rec

    engines = [engine() for _ in range(workers)]
    squares = [letterbox(cv2.imread(p)) for p in paths]
    found = [None] * len(paths)

    def run(stage):
        def work(k):
            det, rec = engines[k]
            for i in range(k, len(paths), workers):
                if stage == "detect":
                    found[i] = det.detect(squares[i])[1]
                elif stage == "embed":
                    for f in found[i] if found[i] is not None else []:
                        rec.feature(rec.alignCrop(squares[i], f))
                else:
                    img = letterbox(cv2.imread(paths[i]))
                    faces = det.detect(img)[1]
                    for f in faces if faces is not None else []:
                        rec.feature(rec.alignCrop(img, f))
        started = time.perf_counter()
        ts = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return (time.perf_counter() - started) * 1000

    run("detect")  # warm-up
    detect = run("detect")
    faces = sum(0 if f is None else len(f) for f in found)
    run("embed")
    embed = run("embed")
    whole = run("whole")
    print(json.dumps({
        "detect_ms": detect / len(paths),
        "embed_ms": embed / max(faces, 1),
        "whole_ms": whole / len(paths),
        "faces": faces,
        "opencv": cv2.__version__,
    }))


main()
