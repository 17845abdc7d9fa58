#!/usr/bin/env python3
"""Cut windows of real human multi-party chat from three public Gitter rooms (the LiveChat dataset) into chimein's
format, every turn silent.

    python data/real/convert/gitter.py MIRRORS_DIR   # writes data/real/gitter_livechat.jsonl

MIRRORS_DIR holds a bare git mirror of github.com/LiveChat2021/LiveChat as ``LiveChat2021+LiveChat/repo``; the
commit is pinned below and the seeds are fixed, so the output is reproducible. Nothing here downloads anything.
This is the only script that writes gitter_livechat.jsonl (the other real sources: ``irc_and_meetings.py``).
How the windows are cut: gitter.md beside this file.
"""

import argparse
import collections
import hashlib
import json
import random
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

OUT = Path(__file__).resolve().parents[1]  # data/real
LIVECHAT_REPO, LIVECHAT_COMMIT = "LiveChat2021+LiveChat", "062c40fa346b72f330582bf7bd63b539ff84cc86"

MIN_MSGS, MAX_MSGS = 8, 40
TARGET_LO, TARGET_HI = 12, 30
MAX_CHARS = 600


def git_show(mirrors, path):
    return subprocess.check_output(
        ["git", "--git-dir", str(mirrors / LIVECHAT_REPO / "repo"), "show", f"{LIVECHAT_COMMIT}:{path}"]
    )


# ---------------------------------------------------------------- cleaning
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
PHONE_RES = [
    re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?\(\d{2,4}\)[\s.-]?\d{3,4}[\s.-]\d{3,4}(?![\w.])"),
    re.compile(r"(?<![\w.])\+\d{1,3}[\s-]\d{2,4}[\s-]\d{3,4}(?:[\s-]\d{2,4})?(?![\w.])"),
    re.compile(r"(?<![\w.:/-])\d{3}-\d{3}-\d{4}(?![\w.-])"),
]


def scrub(text):
    text = EMAIL_RE.sub("<email>", text)
    for r in PHONE_RES:
        text = r.sub("<phone>", text)
    return text


def cut_len(text):
    text = text.strip()
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS - 1].rstrip() + "…"
    return text


# Lines that address a bot/assistant (window is excluded if any line matches).
BOT_ADDRESS_RES = [
    re.compile(r"^\s*@?[\w.-]*bot\b\s*[:,]", re.I),  # "bot: ...", "@xbot, ..."
    re.compile(r"@[\w.-]*bot\b", re.I),  # "@somebot"
    re.compile(r"\b(hey|hi|hello|ok|okay|yo)\s*,?\s+bot\b", re.I),
    re.compile(r"^\s*(hey\s+|ok\s+|okay\s+)?assistant\s*[,:!]", re.I),
    re.compile(r"\bchime\s*-?\s*in\b.*\b(bot|assistant)\b|\bchimein\b", re.I),
    re.compile(
        r"\b(are|r) (you|u) (a |an )?(bot|robot|ai|human)\b|\bI(?:'m| am) a bot\b", re.I
    ),  # bot-or-not exchanges
    re.compile(r"^\s*!\w+"),  # "!cmd" channel-bot commands
    re.compile(r"^\s*(hey\s+|ok\s+|okay\s+)?(alexa|siri|cortana|google|chatgpt|gpt|claude|copilot)\s*[,:]", re.I),
]


def addresses_bot(text):
    return any(r.search(text) for r in BOT_ADDRESS_RES)


# ---------------------------------------------------------------- windowing
def cut_windows(seg, rng):
    """Cut one segment (list of message dicts) into consecutive, non-overlapping windows."""
    out, i, n = [], 0, len(seg)
    while n - i >= MIN_MSGS:
        k = rng.randint(TARGET_LO, TARGET_HI)
        if n - i - k < MIN_MSGS:  # don't leave a stub: take the rest if it fits
            k = min(n - i, MAX_MSGS) if n - i <= MAX_MSGS else k
        out.append((i, seg[i : i + k]))
        i += k
    return out


def good_window(msgs, min_speakers=2):
    spk = collections.Counter(m["name"] for m in msgs)
    if len(spk) < min_speakers:
        return False
    if spk.most_common(1)[0][1] > 0.8 * len(msgs):
        return False
    if sum(1 for c in spk.values() if c >= 2) < 2:  # at least two people really talking
        return False
    if any(addresses_bot(m["content"]) for m in msgs):
        return False
    return MIN_MSGS <= len(msgs) <= MAX_MSGS


def norm_key(text):
    return re.sub(r"\W+", " ", text.lower()).strip()


class Deduper:
    """Drop a window if >=50% of its substantive messages were already seen in kept windows."""

    def __init__(self):
        self.seen = set()
        self.win_keys = set()

    def keep(self, msgs):
        keys = [norm_key(m["content"]) for m in msgs]
        wk = hashlib.sha1("\n".join(keys).encode()).hexdigest()
        if wk in self.win_keys:
            return False
        subst = [k for k in keys if len(k) >= 25]
        if subst and sum(k in self.seen for k in subst) >= 0.5 * len(subst):
            return False
        self.win_keys.add(wk)
        self.seen.update(subst)
        return True


def select(cands, cap, rng):
    """Pick at most `cap` windows from a stream (random, seeded), preferring >=3 speakers and >=12 messages."""
    if len(cands) <= cap:
        return cands
    order = list(range(len(cands)))
    rng.shuffle(order)
    order.sort(key=lambda j: (-min(3, len({m["name"] for m in cands[j]["msgs"]})), len(cands[j]["msgs"]) < TARGET_LO))
    keep = sorted(order[:cap])
    return [cands[j] for j in keep]


# ---------------------------------------------------------------- Gitter (LiveChat)
GITTER_ROOMS = [  # (file, room name)
    ("data/raw/docker_docker_chatFormat.ascii.txt", "docker/docker"),
    ("data/raw/appium_appium_chatFormat.ascii.txt", "appium/appium"),
    ("data/raw/gitter_gitter_chatFormat.ascii.txt", "gitterHQ/gitter"),
]
GITTER_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] <([^>\s]+)> ?(.*)$")
BOT_NAMES = {"matrixbot", "wokbot", "jsbot", "spacevimbot", "j143-bot", "gitter-badger"}
GAP_SECONDS = 30 * 60
CAP_PER_ROOM = 330


def is_bot_name(name):
    n = name.lower()
    return n in BOT_NAMES or n.endswith("[bot]") or re.search(r"(?<!ro)bot$", n) is not None


def gitter_clean(text):
    text = text.replace("[<-CODE->]", "[code]").replace("[<-LINK->]", "[link]")
    text = re.sub(r"\[<-(\w+)->\]", lambda m: "[" + m.group(1).lower() + "]", text)
    text = text.replace("\ufffd", "")
    text = text.replace("\\'", "'").replace('\\"', '"')  # the export escaped quotes
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n\s*\n+", "\n", text)
    return cut_len(scrub(text))


def gitter_source(mirrors):
    rng = random.Random(20240601)
    windows = []
    for path, room in GITTER_ROOMS:
        raw = git_show(mirrors, path).decode("utf-8", errors="replace").split("\n")
        msgs = []  # parsed, with continuation lines joined
        for ln_no, line in enumerate(raw, 1):
            m = GITTER_LINE.match(line)
            if m:
                msgs.append({"ts": m.group(1), "name": m.group(2), "text": m.group(3), "line": ln_no})
            elif msgs and line.strip():
                msgs[-1]["text"] += "\n" + line
        # segment: break at long silences and at bot/bridge lines (bot output removed)
        segs, cur, prev_t = [], [], None
        for m in msgs:
            t = datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S")
            bot = is_bot_name(m["name"])
            content = gitter_clean(m["text"])
            if bot or (prev_t is not None and (t - prev_t).total_seconds() > GAP_SECONDS):
                if cur:
                    segs.append(cur)
                cur = []
            prev_t = t
            if bot or not content:
                continue
            if not re.search(r"\w", content) and content not in ("[code]", "[link]"):
                continue  # empty / punctuation-only lines
            cur.append({"name": m["name"], "content": content, "ts": m["ts"], "line": m["line"]})
        if cur:
            segs.append(cur)
        cands = []
        for seg in segs:
            for _, w in cut_windows(seg, rng):
                if good_window(w):
                    cands.append(
                        {
                            "msgs": w,
                            "cut": f"Gitter room {room} ({path}), {w[0]['ts']} to {w[-1]['ts']} UTC, "
                            f"raw lines {w[0]['line']}-{w[-1]['line']}, {len(w)} consecutive messages "
                            f"(segment = no gap > 30 min, bot/bridge lines removed)",
                            "stream": room,
                        }
                    )
        dd = Deduper()
        cands = [c for c in cands if dd.keep(c["msgs"])]
        sel = select(cands, CAP_PER_ROOM, rng)
        print(
            f"  gitter {room}: {len(msgs)} msgs, {len(segs)} segments, {len(cands)} candidates, {len(sel)} kept",
            file=sys.stderr,
        )
        windows.extend(sel)
    return windows


def write(out, windows):
    path = out / "gitter_livechat.jsonl"
    dd = Deduper()  # cross-room near-duplicate pass
    n = turns = 0
    with open(path, "w", encoding="utf-8") as fh:
        for w in windows:
            if not dd.keep(w["msgs"]):
                continue
            n += 1
            turns += len(w["msgs"])
            rec = {
                "id": f"real-gitter_livechat-{n:05d}",
                "corpus": "gitter_livechat",
                "licence": "MIT",
                "platform": "gitter",
                "language": "en",
                "category": "real_chat",
                "cut": w["cut"],
                "messages": [{"role": "user", "name": m["name"], "content": m["content"]} for m in w["msgs"]],
            }
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {path}: {n} windows, {turns} user turns", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mirrors", type=Path, help="directory of bare git mirrors, owner+name/repo")
    parser.add_argument("--out", type=Path, default=OUT, help="where gitter_livechat.jsonl goes (default: data/real)")
    args = parser.parse_args()
    repo = args.mirrors / LIVECHAT_REPO / "repo"
    if subprocess.run(
        ["git", "--git-dir", str(repo), "cat-file", "-e", LIVECHAT_COMMIT + "^{commit}"], capture_output=True
    ).returncode:
        sys.exit(f"error: {repo} has no commit {LIVECHAT_COMMIT} (a bare mirror of github.com/LiveChat2021/LiveChat)")
    write(args.out, gitter_source(args.mirrors))


if __name__ == "__main__":
    main()
