#!/usr/bin/env python3
"""Build windows of REAL human multi-party chat for chimein (all-silence label).

Reads only local, already-fetched bare git mirrors (no network):
  /work/.mirror/LiveChat2021+LiveChat/repo   (Gitter chat logs, MIT)
  /work/.mirror/Yale-LILY+QMSum/repo         (AMI + ICSI meeting transcripts)

Writes /work/staging/real/<source>.jsonl, one window per line.
Deterministic: fixed seeds, fixed commits (see COMMITS below).

Usage: python3 convert.py
"""
import collections
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from datetime import datetime

OUT = os.path.dirname(os.path.abspath(__file__))
MIRROR = "/work/.mirror"
LIVECHAT = os.path.join(MIRROR, "LiveChat2021+LiveChat/repo")
QMSUM = os.path.join(MIRROR, "Yale-LILY+QMSum/repo")
COMMITS = {
    LIVECHAT: "062c40fa346b72f330582bf7bd63b539ff84cc86",
    QMSUM: "83d7768c1f2b4dfeb091385d3dc7e239b8e5bb7e",
}

MIN_MSGS, MAX_MSGS = 8, 40
TARGET_LO, TARGET_HI = 12, 30
MAX_CHARS = 600


def git_show(repo, path):
    return subprocess.check_output(
        ["git", "--git-dir", repo, "show", f"{COMMITS[repo]}:{path}"])


def git_ls(repo, path):
    out = subprocess.check_output(
        ["git", "--git-dir", repo, "ls-tree", "--name-only", COMMITS[repo], path])
    return sorted(out.decode().split())


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
        text = text[:MAX_CHARS - 1].rstrip() + "…"
    return text


# Lines that address a bot/assistant (window is excluded if any line matches).
BOT_ADDRESS_RES = [
    re.compile(r"^\s*@?[\w.-]*bot\b\s*[:,]", re.I),          # "bot: ...", "@xbot, ..."
    re.compile(r"@[\w.-]*bot\b", re.I),                      # "@somebot"
    re.compile(r"\b(hey|hi|hello|ok|okay|yo)\s*,?\s+bot\b", re.I),
    re.compile(r"^\s*(hey\s+|ok\s+|okay\s+)?assistant\s*[,:!]", re.I),
    re.compile(r"\bchime\s*-?\s*in\b.*\b(bot|assistant)\b|\bchimein\b", re.I),
    re.compile(r"\b(are|r) (you|u) (a |an )?(bot|robot|ai|human)\b|\bI(?:'m| am) a bot\b", re.I),  # bot-or-not exchanges
    re.compile(r"^\s*!\w+"),                                 # "!cmd" channel-bot commands
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
        if n - i - k < MIN_MSGS:          # don't leave a stub: take the rest if it fits
            k = min(n - i, MAX_MSGS) if n - i <= MAX_MSGS else k
        out.append((i, seg[i:i + k]))
        i += k
    return out


def good_window(msgs, min_speakers=2):
    spk = collections.Counter(m["name"] for m in msgs)
    if len(spk) < min_speakers:
        return False
    if spk.most_common(1)[0][1] > 0.8 * len(msgs):
        return False
    if sum(1 for c in spk.values() if c >= 2) < 2:   # at least two people really talking
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
    order.sort(key=lambda j: (-min(3, len({m["name"] for m in cands[j]["msgs"]})),
                              len(cands[j]["msgs"]) < TARGET_LO))
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
    text = text.replace("\\'", "'").replace('\\"', '"')   # the export escaped quotes
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n\s*\n+", "\n", text)
    return cut_len(scrub(text))


def gitter_source():
    rng = random.Random(20240601)
    windows = []
    for path, room in GITTER_ROOMS:
        raw = git_show(LIVECHAT, path).decode("utf-8", errors="replace").split("\n")
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
                    cands.append({
                        "msgs": w,
                        "cut": f"Gitter room {room} ({path}), {w[0]['ts']} to {w[-1]['ts']} UTC, "
                               f"raw lines {w[0]['line']}-{w[-1]['line']}, {len(w)} consecutive messages "
                               f"(segment = no gap > 30 min, bot/bridge lines removed)",
                        "stream": room,
                    })
        dd = Deduper()
        cands = [c for c in cands if dd.keep(c["msgs"])]
        sel = select(cands, CAP_PER_ROOM, rng)
        print(f"  gitter {room}: {len(msgs)} msgs, {len(segs)} segments, {len(cands)} candidates, {len(sel)} kept",
              file=sys.stderr)
        windows.extend(sel)
    return windows


# ---------------------------------------------------------------- meetings (QMSum: AMI, ICSI)
NAME_POOL = [
    "Anna", "Ben", "Carla", "David", "Emma", "Felix", "Grace", "Hugo", "Irene", "Jonas", "Kate", "Liam",
    "Maria", "Nathan", "Olivia", "Paul", "Rachel", "Sam", "Tessa", "Victor", "Wendy", "Adam", "Beth",
    "Chris", "Diana", "Eric", "Fiona", "George", "Helen", "Ian", "Julia", "Kevin", "Laura", "Mark",
    "Nina", "Oscar", "Petra", "Rob", "Sara", "Tom", "Uma", "Will", "Zoe", "Alice", "Brian", "Claire",
    "Dan", "Eva", "Frank", "Hannah", "Jack", "Lena", "Mike", "Nora", "Peter", "Rosa", "Steve", "Tina",
]


def meeting_clean(text):
    text = text.replace("{disfmarker}", "—")
    text = re.sub(r"\{[a-z_]+\}", " ", text)        # {vocalsound} {gap} {comment} {pause} ...
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\b((?:[A-Za-z]_){2,})", lambda m: m.group(1).replace("_", ""), text)  # L_C_D_ -> LCD
    text = re.sub(r"\b([A-Za-z])_(?=\W|$)", r"\1", text)                                 # lone letter X_
    # light detokenisation of the QMSum tokenised text
    text = re.sub(r" ([.,?!;:%])", r"\1", text)
    text = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text)
    text = re.sub(r"\b(\w+) - (\w+)\b", r"\1-\2", text)
    text = re.sub(r'" ([^"]*?) "', r'"\1"', text)
    text = re.sub(r"\s*—\s*", " — ", text).strip()
    text = re.sub(r"^— |(?<=[.?!]) —$", "", text).strip()
    text = re.sub(r"(— ){2,}", "— ", text)
    return cut_len(scrub(text))


def meeting_source(domain_dir, series_of, per_meeting_cap, seed, label):
    rng = random.Random(seed)
    windows = []
    files = git_ls(QMSUM, f"{domain_dir}/")
    for f in files:
        mid = os.path.basename(f)[:-5]
        d = json.loads(git_show(QMSUM, f))
        turns = d["meeting_transcripts"]
        series = series_of(mid)
        nrng = random.Random(f"{label}-{series}")
        names = nrng.sample(NAME_POOL, len(NAME_POOL))
        mapping = {}
        seg = []
        for idx, t in enumerate(turns):
            spk = t["speaker"].strip()
            if spk not in mapping:
                mapping[spk] = names[len(mapping) % len(names)]
            c = meeting_clean(t["content"])
            if not re.search(r"\w", c):
                continue
            seg.append({"name": mapping[spk], "content": c, "turn": idx, "orig": spk})
        cands = []
        for _, w in cut_windows(seg, rng):
            if good_window(w):
                roles = sorted({f"{m['orig']}={m['name']}" for m in w})
                cands.append({
                    "msgs": w,
                    "cut": f"{label} meeting {mid} ({f}), transcript turns {w[0]['turn']}-{w[-1]['turn']}, "
                           f"{len(w)} consecutive turns; speaker ids renamed: {', '.join(roles)}",
                    "stream": series,
                })
        dd = Deduper()
        cands = [c for c in cands if dd.keep(c["msgs"])]
        windows.extend(select(cands, per_meeting_cap, rng))
    per_series = collections.Counter(w["stream"] for w in windows)
    print(f"  {label}: {len(files)} meetings, {len(windows)} windows, max per series "
          f"{per_series.most_common(1)}", file=sys.stderr)
    return windows


def write(source, licence, platform, windows):
    path = os.path.join(OUT, f"{source}.jsonl")
    dd = Deduper()  # cross-stream near-duplicate pass
    n = turns = 0
    with open(path, "w", encoding="utf-8") as fh:
        for w in windows:
            if not dd.keep(w["msgs"]):
                continue
            n += 1
            turns += len(w["msgs"])
            rec = {
                "id": f"real-{source}-{n:05d}",
                "corpus": source,
                "licence": licence,
                "platform": platform,
                "language": "en",
                "category": "real_chat",
                "cut": w["cut"],
                "messages": [{"role": "user", "name": m["name"], "content": m["content"]} for m in w["msgs"]],
            }
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {path}: {n} windows, {turns} user turns", file=sys.stderr)


def main():
    for repo, c in COMMITS.items():
        subprocess.check_call(["git", "--git-dir", repo, "cat-file", "-e", c + "^{commit}"])
    write("gitter_livechat", "MIT", "gitter", gitter_source())
    write("ami", "CC-BY-4.0", "meeting",
          meeting_source("data/Product/all", lambda m: re.sub(r"[a-d]$", "", m), 6, 11, "AMI"))
    write("icsi", "CC-BY-4.0", "meeting",
          meeting_source("data/Academic/all", lambda m: m[:3], 8, 12, "ICSI"))


if __name__ == "__main__":
    main()
