"""Cut windows of real human multi-party chat from public IRC logs and meeting transcripts into chimein's format.

    python data/real/convert/irc_and_meetings.py MIRRORS_DIR   # writes data/real/irc-*.jsonl, ami.jsonl, icsi.jsonl

MIRRORS_DIR holds bare git mirrors (``owner+name/repo``) of jkkummerfeld/irc-disentanglement and
Yale-LILY/QMSum; the exact commits used are pinned below, so the output is reproducible. Nothing here downloads
anything. This is the only script that writes these files (``gitter.py`` beside it writes gitter_livechat.jsonl).

Every window is a stretch of consecutive messages (8-18 user messages, non-overlapping, spread over each
log), every turn labelled silence: nobody in these chats addressed our assistant. Dropped: system lines
(joins, parts, actions), messages from channel bots, empty lines; windows in which a line addresses a bot
by name (``bot: ...``, ``@bot``) or commands one (``!cmd``): a real address there would be a label we cannot
give. Long lines are cut to 600 characters; e-mail addresses become <email>. Ubuntu channels in the same
repository are never read (reserved for independent evaluation).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))
from chimein.mentions import addresses_assistant  # noqa: E402

OUT = Path(__file__).resolve().parents[1]  # data/real
IRC_REPO, IRC_COMMIT = "jkkummerfeld+irc-disentanglement", "82ed04f9627a45d0d6f2ec3c8683c88eb408a0d5"
QMSUM_REPO, QMSUM_COMMIT = "Yale-LILY+QMSum", "83d7768c1f2b4dfeb091385d3dc7e239b8e5bb7e"
IRC_LICENCE = "CC-BY-4.0 (data/LICENSE-data.txt of jkkummerfeld/irc-disentanglement)"
AMI_LICENCE = "CC-BY-4.0 (AMI Meeting Corpus; transcripts as redistributed in Yale-LILY/QMSum, MIT)"
ICSI_LICENCE = "CC-BY-4.0 (ICSI Meeting Corpus; transcripts as redistributed in Yale-LILY/QMSum, MIT)"
BOT_NICK = re.compile(r"(bot|-wm|wikibugs|serv|jenkins|travis|github|gitter)\d*$", re.IGNORECASE)
IRC_LINE = re.compile(r"^(?:\S+ \S+ )?\[[\d:]+\] <([^>]+)>\s?(.*)$")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
NAMES = (
    "Amara Ben Chiara Dmitri Elif Farid Greta Hiro Ines Jonas Kavya Lars Mei Nadia Omar Priya Quinn Rosa "
    "Sven Tomás Uma Viktor Wen Ximena Yusuf Zofia Aiko Bruno Carmen Dev Esther Felix Gabriela Hamid Ilse "
    "Joao Kofi Leila Mateo Noor"
).split()


def git_show(mirrors: Path, repo: str, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={mirrors / repo / 'repo'}", "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def git_ls(mirrors: Path, repo: str, commit: str, folder: str) -> list[str]:
    out = subprocess.run(
        ["git", f"--git-dir={mirrors / repo / 'repo'}", "ls-tree", "--name-only", commit, folder + "/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(out.split())


def clean(text: str) -> str:
    text = EMAIL.sub("<email>", text)
    text = re.sub(r"\{(vocalsound|disfmarker|gap|pause|nonvocalsound|comment)\}", " ", text)
    text = re.sub(r"\s+([.,?!])", r"\1", re.sub(r"\s+", " ", text)).strip()
    return text[:600]


def windows(
    lines: list[tuple[str, str]], rng: random.Random, per_log: int, lo: int = 8, hi: int = 18
) -> list[tuple[int, list]]:
    """Up to ``per_log`` non-overlapping windows of lo-hi messages, spread over the log."""
    out, start = [], 0
    stride = max(hi, len(lines) // max(per_log, 1))
    while start + lo <= len(lines) and len(out) < per_log:
        size = rng.randint(lo, hi)
        chunk = lines[start : start + size]
        if (
            len(chunk) >= lo
            and len({n for n, _ in chunk}) >= 2
            and not any(addresses_assistant(t) or t.startswith("!") for _, t in chunk)
        ):
            out.append((start, chunk))
        start += max(stride, size)
    return out


def irc_log(mirrors: Path, path: str) -> list[tuple[str, str]]:
    lines = []
    for raw in git_show(mirrors, IRC_REPO, IRC_COMMIT, path).splitlines():
        m = IRC_LINE.match(raw.strip())
        if not m or BOT_NICK.search(m.group(1)):
            continue  # joins/parts ("=== ..."), actions ("* nick ..."), bots
        text = clean(m.group(2))
        if text:
            lines.append((m.group(1), text))
    return lines


def meeting(mirrors: Path, path: str, rng: random.Random) -> list[tuple[str, str]]:
    data = json.loads(git_show(mirrors, QMSUM_REPO, QMSUM_COMMIT, path))
    names = rng.sample(NAMES, 12)
    who: dict[str, str] = {}
    lines = []
    for turn in data["meeting_transcripts"]:
        text = clean(turn["content"])
        if len(re.findall(r"\w+", text)) < 1:
            continue
        speaker = who.setdefault(turn["speaker"], names[len(who) % len(names)])
        lines.append((speaker, text))
    return lines


def write(out: Path, corpus: str, rows: list[dict]) -> None:
    with open(out / f"{corpus}.jsonl", "w", encoding="utf-8") as f:
        for i, row in enumerate(rows, 1):
            f.write(json.dumps({"id": f"real-{corpus}-{i:05d}", **row}, ensure_ascii=False) + "\n")
    print(f"{corpus}: {len(rows)} windows, {sum(len(r['messages']) for r in rows)} user turns")


def main(mirrors: Path, out: Path = OUT) -> None:
    for repo, commit in ((IRC_REPO, IRC_COMMIT), (QMSUM_REPO, QMSUM_COMMIT)):
        git_dir = mirrors / repo / "repo"
        if subprocess.run(
            ["git", f"--git-dir={git_dir}", "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True
        ).returncode:
            sys.exit(f"error: {git_dir} has no commit {commit} (a bare mirror of github.com/{repo.replace('+', '/')})")
    rng = random.Random(11)
    irc = {
        "irc-rust": [
            "data/new-domains/rust.0.ascii.txt",
            "data/new-domains/rust.1.ascii.txt",
            "data/new-domains/rust.2.ascii.txt",
        ],
        "irc-stripe": [
            "data/new-domains/stripe.0.ascii.txt",
            "data/new-domains/stripe.1.ascii.txt",
            "data/new-domains/stripe.2.ascii.txt",
        ],
        "irc-mediawiki": [
            "data/new-domains/mediawiki.0.ascii.txt",
            "data/new-domains/mediawiki.1.ascii.txt",
            "data/new-domains/mediawiki.2.ascii.txt",
        ],
        "irc-linux": ["data/channel-two/channel-two.all.ascii.txt"],
    }
    for corpus, paths in irc.items():
        rows = []
        for path in paths:
            log = irc_log(mirrors, path)
            for start, chunk in windows(log, rng, per_log=10_000, lo=10, hi=18):
                rows.append(
                    {
                        "corpus": corpus,
                        "licence": IRC_LICENCE,
                        "platform": "irc",
                        "language": "en",
                        "category": "real_chat",
                        "cut": f"{path} (after cleaning) messages {start}-{start + len(chunk)}",
                        "messages": [{"role": "user", "name": n, "content": t} for n, t in chunk],
                    }
                )
        write(out, corpus, rows)
    for corpus, folder, licence, per_meeting in (
        ("ami", "data/Product/all", AMI_LICENCE, 7),
        ("icsi", "data/Academic/all", ICSI_LICENCE, 10),
    ):
        rows = []
        for path in git_ls(mirrors, QMSUM_REPO, QMSUM_COMMIT, folder):
            for start, chunk in windows(meeting(mirrors, path, rng), rng, per_log=per_meeting):
                rows.append(
                    {
                        "corpus": corpus,
                        "licence": licence,
                        "platform": "meeting",
                        "language": "en",
                        "category": "real_chat",
                        "cut": f"{path} turns {start}-{start + len(chunk)}, speakers renamed",
                        "messages": [{"role": "user", "name": n, "content": t} for n, t in chunk],
                    }
                )
        write(out, corpus, rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mirrors", type=Path, help="directory of bare git mirrors, owner+name/repo")
    parser.add_argument("--out", type=Path, default=OUT, help="where the .jsonl files go (default: data/real)")
    args = parser.parse_args()
    main(args.mirrors, args.out)
