"""Write tests/fixtures/text_clip_bpe.json: captions and the ids OpenAI's own tokenizer gives them.

The reference is ``clip/simple_tokenizer.py`` of github.com/openai/CLIP (commit
d05afc436d78f1c48dc0dbf8e5980a9d471f35f6), exported unchanged to a scratch folder:

    git --git-dir=<mirror> show HEAD:clip/simple_tokenizer.py > /tmp/ref/clip/simple_tokenizer.py
    python tools/make_golden_text.py --ref /tmp/ref/clip \
        --bpe ../shared/data/clip/bpe_simple_vocab_16e6.txt.gz \
        --out tests/fixtures/text_clip_bpe.json

The ids depend on the installed ftfy (its text fixes run first); the fixture records its version.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path

REFERENCE = "openai/CLIP@d05afc436d78f1c48dc0dbf8e5980a9d471f35f6:clip/simple_tokenizer.py"

_LONG = (
    "a man in a red shirt walks into a kitchen, opens the fridge and takes out two eggs; "
    "then he cracks them into a bowl, whisks them with a fork while talking to the camera "
    "about how long to cook an omelette (about 3 minutes on medium heat), pours the mixture "
    "into a hot pan, adds cheese, ham & chopped onions, folds it in half and slides it onto a "
    "white plate before taking a bite and smiling. "
)

CAPTIONS = [
    # real MSR-VTT / MSRVTT-QA text
    "a person is connecting something to system",
    "a little girl does gymnastics",
    "broth is being added to a soup pot and stirred with a rubber spatula",
    "bbc talking to guys with very expensive red sports car",
    "pokemon video game play",
    "what are three people sitting on?",
    # case, contractions, punctuation
    "A Woman IS Singing ON Stage",
    "DON'T stop, it's what we'll've done; they're here and I'd go",
    "wow!!! what... is -- that?!?",
    '"quoted" text (in parens) [brackets] {braces} <angle>',
    "e-mail someone@example.com or visit https://example.org/path?q=1&x=2",
    "#hashtag @mention snake_case_word under_score",
    # html entities, single and double escaped
    "tom &amp; jerry &lt;3 &quot;cartoon&quot; &#39;classic&#39;",
    "double escaped &amp;amp; and &amp;quot;quotes&amp;quot;",
    "non&nbsp;breaking&nbsp;spaces",
    # ftfy repairs: mojibake, curly quotes
    "the cafÃ© serves crÃ¨me brÃ»lÃ©e",
    "\u201csmart quotes\u201d and \u2018single\u2019 ones, it\u2019s fine",
    # numbers
    "3 dogs and 12 cats ran 1,000,000 miles in 2.5 hours on 2nd street",
    "call 555-0123 at 10:30pm, 99% sure, $45.00 or \u20ac3",
    # whitespace
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nand   many    spaces",
    "zero\u200bwidth space and soft\u00adhyphen",
    # unicode letters and symbols
    "caf\u00e9 na\u00efve fa\u00e7ade \u00fcber stra\u00dfe",
    "\u6771\u4eac\u306e\u96fb\u8eca\u306b\u4e57\u308b\u4eba",
    "\u043c\u0443\u0436\u0447\u0438\u043d\u0430 \u0438\u0433\u0440\u0430\u0435\u0442 \u043d\u0430 "
    "\u0433\u0438\u0442\u0430\u0440\u0435",
    "\u0631\u062c\u0644 \u064a\u0644\u0639\u0628 \u0643\u0631\u0629 \u0627\u0644\u0642\u062f\u0645",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u092e\u0947\u0902 \u0917\u093e\u0928\u093e",
    "e\u0301 decomposed accent and \u212b angstrom sign",
    "\uff21\uff22\uff23 fullwidth \uff11\uff12\uff13",
    "emoji \U0001f600\U0001f44d\U0001f3fd family \U0001f468\u200d\U0001f469\u200d\U0001f467 "
    "flag \U0001f1ef\U0001f1f5",
    "math \u2211 \u221e \u2248 \u00b1 \u00b2 \u00bd and arrows \u2192 \u21d2",
    # special-token strings inside a caption
    "<|startoftext|>hello<|endoftext|>",
    "<|StartOfText|> mixed case special",
    # single characters and repeats
    "x",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    # MSVD style: pre-tokenized words joined by spaces
    "a man is slicing a tomato .",
    # long paragraphs (ActivityNet / DiDeMo style, truncated by max_words later)
    _LONG,
    _LONG * 3,
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, required=True, help="folder with simple_tokenizer.py")
    parser.add_argument("--bpe", type=Path, required=True, help="bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    sys.path.insert(0, str(args.ref))
    from simple_tokenizer import SimpleTokenizer  # the reference, imported from --ref

    reference = SimpleTokenizer(str(args.bpe))
    cases = [{"text": text, "ids": reference.encode(text)} for text in CAPTIONS]
    payload = {
        "reference": REFERENCE,
        "ftfy": importlib.metadata.version("ftfy"),
        "sot_id": reference.encoder["<|startoftext|>"],
        "eot_id": reference.encoder["<|endoftext|>"],
        "vocab_size": len(reference.encoder),
        "cases": cases,
    }
    args.out.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} cases to {args.out}")


if __name__ == "__main__":
    main()
