#!/usr/bin/env bash
# The demo model's corpus: the King James Bible (1611; public domain) as Debian's bible-kjv-text
# package ships it, printed by bible-kjv's own `bible` program (the data file is compressed).
# Runs here (Debian, no root): downloads the two .debs, extracts them, prints the text, and writes
# one chapter per block to $1 (default .device/corpus/kjv.txt), with the package's copyright file.
set -euo pipefail
out=${1:-.device/corpus/kjv.txt}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"
(cd "$work" && apt-get download bible-kjv bible-kjv-text >/dev/null 2>&1 && for d in *.deb; do dpkg -x "$d" x; done)
"$work/x/usr/bin/bible" -p "$work/x/usr/lib" 'Gen1:1-Rev22:21' > "$work/raw.txt"
cp "$work/x/usr/share/doc/bible-kjv-text/copyright" "$(dirname "$out")/kjv-copyright.txt"
python3 - "$work/raw.txt" "$out" <<'PY'
import re, sys
raw = open(sys.argv[1], encoding='latin-1').read()
chapters = []
for block in re.split(r'\n(?=[1-3]? ?[A-Z][A-Za-z ]+ \d+\n)', raw.strip()):
    lines = block.strip().split('\n')
    title, body = lines[0].strip(), ' '.join(l.strip() for l in lines[1:])
    verses = [v.strip() for v in re.split(r'\s*\b\d+ (?=[A-Z\[(])', ' ' + body) if v.strip()]
    chapters.append(title + '\n' + '\n'.join(verses))
open(sys.argv[2], 'w', encoding='utf-8').write('\n\n'.join(chapters) + '\n')
print(f'{len(chapters)} chapters, {sum(c.count(chr(10)) for c in chapters)} verses, {sum(len(c) for c in chapters)} characters -> {sys.argv[2]}')
PY
