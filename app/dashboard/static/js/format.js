// Numbers at a market's precision (tickSize for prices, lotSize for quantities).

/** Decimals of a step such as 0.01 (2) or 1e-7 (7). */
export function decimalsOf(step) {
  const text = String(step);
  if (text.includes("e-")) return Number(text.split("e-")[1]);
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.length - dot - 1;
}

export function fixed(value, decimals) {
  return value === null || value === undefined || Number.isNaN(value) ? "–"
    : Number(value).toFixed(decimals);
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

/** A small element builder: el("td", {className: "x"}, "text", child...). */
export function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}
