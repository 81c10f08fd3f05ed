"""Reference ids of a SentencePiece model (Llama-2 tokenizer.model) for generate_fixtures.mjs.

Reads a JSON list of strings on stdin, writes the fixture cases as JSON on stdout. Needs the sentencepiece
Python module (Debian: `apt-get install -y python3-sentencepiece`, then run with /usr/bin/python3).
Special tokens: BOS (<s>) is prepended when special tokens are on, like Hugging Face's LlamaTokenizer;
"<s>" written in text is ordinary text for sentencepiece. Decoding drops control tokens (<s>, </s>), so
`decoded_with_special` writes them out as their piece text, the way ptq's SentencePieceTokenizer does.
"""
import json
import sys

import sentencepiece


def main() -> None:
    sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])
    strings = json.loads(sys.stdin.read())
    cases = []
    for text in strings:
        ids = sp.encode(text)
        with_special = [sp.bos_id()] + ids
        cases.append({
            "text": text,
            "ids_with_special": with_special,
            "ids_without_special": ids,
            "decoded": sp.decode(with_special),
            "decoded_with_special": sp.id_to_piece(sp.bos_id()) + sp.decode(ids),
        })
    json.dump(cases, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
