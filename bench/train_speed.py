"""Training throughput on a CPU: chimein's default recipe against plain SFTTrainer defaults, same data.

    python bench/train_speed.py            # 24 training conversations per variant, writes bench/results/train_speed.json

Variants, one process, one run, the same conversations (one epoch each):
- default: chimein's recipe (LoRA r=16 on the top 15 layers, batch 1 x 8 accumulation, no padding, no checkpointing,
  decision-weighted loss with logits only where the next token is trained)
- trl-loss: the default recipe with trl's own loss (decision_weight=1: its fused LM head scores every position)
- sft-defaults: LoRA on all linear layers with SFTConfig's defaults (batch 8 padded, gradient checkpointing on)
- packed: the default recipe with trl's BFD packing into 2048-token sequences (block-diagonal attention)
Tokens/s counts real (non-padding) tokens; peak RSS is sampled while each variant trains.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import psutil

from chimein.train.config import build_config
from chimein.train.sft import run

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "default": [],
    "trl-loss": ["decision_weight=1.0"],
    "sft-defaults": ["lora_top_layers=0", "per_device_train_batch_size=8", "gradient_accumulation_steps=1",
                     "gradient_checkpointing=true", "decision_weight=1.0"],
    "packed": ["packing=true", "max_length=2048"],
}


class PeakRss:
    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss / 2**20)
            time.sleep(0.2)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=24)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset (sft-defaults is the baseline)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_speed.json"))
    args = ap.parse_args()
    rows = {}
    for name in args.variants.split(","):
        sets = VARIANTS[name]
        cfg = build_config("smollm2-135m", overrides={
            "train_file": str(ROOT / "data" / "train.jsonl"), "valid_file": None, "limit": args.conversations,
            "output_dir": f"/tmp/chimein-bench-{name}", "num_train_epochs": 1.0}, sets=sets + ["save_steps=100000", "logging_steps=1000"])
        with PeakRss() as rss:
            res = run(cfg, progress=False)
        rows[name] = {"seconds": round(res.seconds, 1), "tokens": res.tokens, "tokens_per_s": round(res.tokens / res.seconds, 1),
                      "steps": res.steps, "peak_rss_mb": round(rss.peak)}
    base_name = "sft-defaults" if "sft-defaults" in rows else next(iter(rows))
    base = rows[base_name]["tokens_per_s"]
    print(f"{'variant':<14} {'seconds':>8} {'tokens/s':>9} {'x ' + base_name:>15} {'peak RSS MB':>12}")
    for name, r in rows.items():
        r[f"speedup_vs_{base_name}"] = round(r["tokens_per_s"] / base, 2)
        print(f"{name:<14} {r['seconds']:>8} {r['tokens_per_s']:>9} {r[f'speedup_vs_{base_name}']:>15} {r['peak_rss_mb']:>12}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"conversations": args.conversations, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
