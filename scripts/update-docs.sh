#!/usr/bin/env bash
# Regenerates man/ and completions/ from the clap definitions.
# The test `generated_docs_are_up_to_date` fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin=target/debug/bistro
mkdir -p man completions
"$bin" manpage > man/bistro.1
for sub in $("$bin" --help | awk '/^Commands:/{on=1;next} on && /^  [a-z]/{print $1} /^$/{if(on)exit}'); do
    [ "$sub" = help ] && continue
    "$bin" manpage "$sub" > "man/bistro-$sub.1"
done
"$bin" completions bash > completions/bistro.bash
"$bin" completions zsh > completions/_bistro
"$bin" completions fish > completions/bistro.fish
echo "updated man/ and completions/"
