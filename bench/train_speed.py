"""Training throughput on a CPU: chimein's default recipe against plain SFTTrainer defaults, same data.

    python bench/train_speed.py            # 24 training conversations per variant, writes bench/results/train_speed.json

Variants, one run of this script, the same conversations (one epoch each):
- default: chimein's recipe (LoRA r=16 on the top 10 layers without dropout, batch 1 x 8 accumulation, no padding,
  no checkpointing, decision-weighted loss with logits only where the next token is trained)
- top15-dropout: the previous default (LoRA on the top 15 layers, LoRA dropout 0.05)
- trl-loss: the default recipe with trl's own loss (decision_weight=1: its fused LM head scores every position)
- sft-defaults: LoRA on all linear layers with SFTConfig's defaults (batch 8 padded, gradient checkpointing on)
- packed: the default recipe with trl's BFD packing into 2048-token sequences (block-diagonal attention)
Tokens/s counts real (non-padding) tokens. Each variant trains in a fresh process (the script re-runs itself), so
peak RSS is that variant's alone; the ratios still come from one run of the script on the same machine state.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chimein.train.config import build_config
from chimein.train.sft import run
from peak import in_fresh_process, peak_rss_mb  # bench/peak.py

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "default": [],
    "top15-dropout": ["lora_top_layers=15", "lora_dropout=0.05"],
    "trl-loss": ["decision_weight=1.0"],
    "sft-defaults": [
        "lora_top_layers=0",
        "per_device_train_batch_size=8",
        "gradient_accumulation_steps=1",
        "gradient_checkpointing=true",
        "decision_weight=1.0",
    ],
    "packed": ["packing=true", "max_length=2048"],
}


def train_one(name: str, conversations: int) -> dict:
    """One variant, one epoch; peak RSS is this process's own (each variant runs in a fresh process)."""
    cfg = build_config(
        "smollm2-135m",
        overrides={
            "train_file": str(ROOT / "data" / "train.jsonl"),
            "valid_file": None,
            "limit": conversations,
            "output_dir": f"/tmp/chimein-bench-{name}",
            "num_train_epochs": 1.0,
        },
        sets=VARIANTS[name] + ["save_steps=100000", "logging_steps=1000"],
    )
    res = run(cfg, progress=False)
    return {
        "seconds": round(res.seconds, 1),
        "tokens": res.tokens,
        "tokens_per_s": round(res.tokens / res.seconds, 1),
        "steps": res.steps,
        "peak_rss_mb": round(peak_rss_mb()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=24)
    ap.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated subset (sft-defaults is the baseline)"
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_speed.json"))
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: train one variant in this (fresh) process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(train_one(args.one, args.conversations)))
        return
    rows = {}
    for name in args.variants.split(","):
        rows[name] = in_fresh_process(__file__, "--one", name, "--conversations", str(args.conversations))
        print(f"{name}: {rows[name]}", file=sys.stderr)
    base_name = "sft-defaults" if "sft-defaults" in rows else next(iter(rows))
    base = rows[base_name]["tokens_per_s"]
    print(f"{'variant':<14} {'seconds':>8} {'tokens/s':>9} {'x ' + base_name:>15} {'peak RSS MB':>12}")
    for name, r in rows.items():
        r[f"speedup_vs_{base_name}"] = round(r["tokens_per_s"] / base, 2)
        print(
            f"{name:<14} {r['seconds']:>8} {r['tokens_per_s']:>9} {r[f'speedup_vs_{base_name}']:>15} {r['peak_rss_mb']:>12}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"conversations": args.conversations, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
