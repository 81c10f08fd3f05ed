// The strings every tokenizer fixture covers. Each one exercises a place where tokenizers differ:
// pre-tokenizer regexes (contractions, digit groups, whitespace runs and the `\s+(?!\S)` look-ahead),
// byte-level mapping of multi-byte UTF-8, NFC normalization (Qwen), byte fallback (Mistral), and added
// tokens written inside text.
import fs from "fs";

// A real paragraph: the first four lines of WikiText-2 test (heading, blank line, first paragraph).
function wikitext_paragraph(shared_data) {
  const lines = fs.readFileSync(`${shared_data}/wikitext2/test.txt`, "utf8").split("\n");
  return lines.slice(0, 4).join("\n") + "\n";
}

// Short strings drawn (with a fixed seed, so the fixtures are reproducible) from pools of characters that
// tokenizers treat differently: letters of several scripts, digits, whitespace of all kinds, punctuation,
// combining marks, Hangul jamo, emoji with modifiers and ZWJ, look-alike letters (ſ, K), and fragments of
// special tokens and contractions.
function random_strings(count) {
  const pools = [
    "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", "     ", "\n\n\t\r",
    ".,;:!?'\"()[]{}-_/\\@#$%^&*+=<>|~`", "éèêëàâäôöùûüçñÅåøæœßÉ", "\u0301\u0308\u0327",
    "你好世界中文字符测试", "日本語カタカナひらがな", "한국어문장", "\u1100\u1161\u11a8", "مرحبا", "Привет",
    "नमस्ते", "😀🍕🚀👍🏽👨‍👩‍👧", "\u00a0\u2003\u3000\u2028\u200b\u00ad", "ſKΩℝ𝔘",
    "'s't're've'm'll'd", "<|<s></s>|>",
  ].map((pool) => [...pool]);
  let state = 12345;  // a linear congruential generator: the same strings on every run
  const random = () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
  const pick = (list) => list[Math.floor(random() * list.length)];
  const strings = [];
  for (let i = 0; i < count; ++i) {
    let text = "";
    for (let n = 1 + Math.floor(random() * 30); n > 0; --n) text += pick(pick(pools));
    strings.push(text);
  }
  return strings;
}

export function test_strings(shared_data) {
  const nfc_accents = "café résumé naïve Ångström";
  const nfd_accents = nfc_accents.normalize("NFD");
  return [
    // prose and punctuation
    "The history of the city",
    "Hello, world!",
    "Once upon a time, there was a little girl named Lily.",
    "The quick brown fox jumps over the lazy dog. THE END?!",
    " Hello",
    "Hello world ",
    "Mr. O'Neil said: \"It's (probably) fine...\" — didn't he?",
    // numbers
    "1234567",
    "3.14159",
    "2024-11-22",
    "$1,000,000.00 and 12345678901234567890",
    "In 1990, the band released 3 albums; 42% of 7/8.",
    // whitespace
    "a  b   c",
    "\t\tx",
    "trailing spaces   ",
    "\n\n\n",
    "line one\nline two\r\nline three\n",
    "  leading and\n\n  indented\n",
    " ",
    "",
    "\u00a0non-breaking\u3000ideographic\u2003em",
    // emoji (single, modifiers, ZWJ sequences, flags)
    "I love 🍕 and 🚀!",
    "👍🏽 family: 👨‍👩‍👧‍👦 rainbow flag: 🏳️‍🌈 flags: 🇫🇷🇯🇵",
    // CJK and other scripts
    "你好，世界！这是一个测试。",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 문장입니다.",
    "Привет, мир! Ελληνικά. مرحبا بالعالم. नमस्ते दुनिया",
    // accents in both normal forms (Qwen normalizes to NFC, the others keep the bytes)
    nfc_accents,
    nfd_accents,
    "Hangul NFD: " + "한국".normalize("NFD"),
    // code
    "def add(a, b):\n    return a + b\n\nif __name__ == \"__main__\":\n    print(add(1, 2))\n",
    "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\tfor (auto& x : v) x *= 2;  // double\n\treturn 0;\n}\n",
    "{\"key\": [1, 2.5, null], \"nested\": {\"a\": true}}",
    // contractions, including upper case (the Llama-3/Qwen regexes match them case-insensitively)
    "I'm sure we'll see they're here, DON'T you think? It'S I'VE you'd",
    "rock 'n' roll, the '90s, ''quoted''",
    // text that looks like special tokens
    "<|endoftext|>",
    "<|begin_of_text|>hi",
    "<s>",
    "</s>",
    "<|bos|>",
    "<s>hi</s> <|endoftext|>",
    "a<|eot_id|>b <|im_start|>user\nhi<|im_end|>\n",
    "<|bos|>The<|eos|> <|pad|>",
    "<unk> <0x41> <|begin_of_text|><|end_of_text|>",
    "<think>\nreasoning\n</think>\n\nanswer",
    // very long words
    "Pneumonoultramicroscopicsilicovolcanoconiosis and supercalifragilisticexpialidocious",
    "a".repeat(300),
    "https://example.com/some/really/long/path?query=value&other=1234#fragment_with_underscores",
    "ZZZZZZZZZZZZZZZZZZZZqqqqqqqqqqqqxxxxxxxxxx",
    // rare characters (byte fallback for SentencePiece-style vocabularies)
    "math: ∀x∈ℝ, x²≥0 ⇒ √x² = |x| ≠ ∞ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "Zoo",
    "Once upon",
    // a real paragraph
    wikitext_paragraph(shared_data),
    ...random_strings(40),
  ];
}
