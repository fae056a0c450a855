#!/usr/bin/env bash
# prompts/generate.sh: the daemon's own voice prompts and the demo's, spoken
# by espeak-ng and converted by sox to 8 kHz mono 16-bit PCM WAV (the
# format prompts must have). The WAVs are committed: nothing builds or
# tests needs these tools; run this only to change what they say.
#
#   sudo apt-get install espeak-ng sox && bash prompts/generate.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "prompts: $tool is not installed (apt-get install espeak-ng sox)" >&2; exit 2; }
done

say() { # say FILE TEXT
    local tmp
    tmp=$(mktemp --suffix=.wav)
    espeak-ng -v en-us -s 150 -w "$tmp" "$2"
    # 8 kHz mono 16-bit, a little louder, 120 ms of silence at the end.
    sox "$tmp" -r 8000 -c 1 -b 16 -e signed-integer "$1" gain -n -3 pad 0 0.12
    rm -f "$tmp"
}

mkdir -p builtin/digits demo
say builtin/you-have-reached.wav "You have reached"
say builtin/leave-message.wav "Please leave a message after the tone."
say builtin/goodbye.wav "Thank you. Goodbye."
say builtin/mailbox-full.wav "Sorry, this mailbox is full. Goodbye."
say builtin/invalid-option.wav "Sorry, that is not a valid option."
for d in 0 1 2 3 4 5 6 7 8 9; do
    say "builtin/digits/$d.wav" "$d"
done
# The beep: 1 kHz for 300 ms.
sox -n -r 8000 -c 1 -b 16 -e signed-integer builtin/beep.wav synth 0.3 sine 1000 gain -6

say demo/support-menu.wav "Thank you for calling support. For sales, press 1. To leave a message, press 3. For our opening hours, press 9."
say demo/closed.wav "Our office is closed. Please call again during business hours."
say demo/hours.wav "We are open Monday to Friday, from nine to five."
say demo/voicemail-greeting.wav "You have reached the front desk. Please leave your name, number and message after the tone."
echo "prompts: written to $(pwd)"
