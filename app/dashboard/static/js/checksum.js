// Order-book checksum (pure; no DOM): CRC32, unsigned, of the UTF-8 string of the best
// 25 bids (highest first) then the best 25 asks (lowest first), each level written
// "price:quantity" exactly as the numbers were written in the JSON, joined with "|".
// The server writes the same value into every orderbook snapshot and update.

export const CHECKSUM_DEPTH = 25;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

const utf8 = new TextEncoder();

/** CRC32 (IEEE, as zlib.crc32 and Python's binascii) of a string's UTF-8 bytes, unsigned. */
export function crc32(text) {
  let c = 0xffffffff;
  for (const byte of utf8.encode(text)) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * A float written the way the service's JSON encoder (orjson) writes it: "100.0",
 * "0.5", "0.00001", "1e-6", "1e+16". Used only when the browser cannot give a number's
 * source text (JSON.parse source access), which is what the checksum is defined on.
 */
export function numberText(x) {
  const abs = Math.abs(x);
  if (abs !== 0 && (abs < 1e-5 || abs >= 1e16)) return x.toExponential();
  if (Number.isInteger(x)) return `${x}.0`;
  return String(x);
}

/** Parse a frame, keeping each level's price and quantity as written (priceText,
 *  quantityText): the checksum is defined on the JSON's text, not on the parsed float. */
export function parseFrame(text) {
  let seen = {};
  return JSON.parse(text, function revive(key, value, context) {
    if ((key === "price" || key === "quantity") && typeof value === "number") {
      if (context && typeof context.source === "string") seen[key] = context.source;
    } else if (value !== null && typeof value === "object" && !Array.isArray(value)
               && "price" in value && "quantity" in value) {
      if (seen.price !== undefined) value.priceText = seen.price;
      if (seen.quantity !== undefined) value.quantityText = seen.quantity;
      seen = {};
    }
    return value;
  });
}

function levelText(level) {
  const price = level.priceText ?? numberText(level.price);
  const quantity = level.quantityText ?? numberText(level.quantity);
  return `${price}:${quantity}`;
}

/** The string the checksum is taken of; bids highest first, asks lowest first. */
export function checksumString(bids, asks, depth = CHECKSUM_DEPTH) {
  return [...bids.slice(0, depth), ...asks.slice(0, depth)].map(levelText).join("|");
}

export function bookChecksum(bids, asks, depth = CHECKSUM_DEPTH) {
  return crc32(checksumString(bids, asks, depth));
}
