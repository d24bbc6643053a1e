// Numbers and dates in words, the same way in every view.

export const percent = (value) => `${(value * 100).toFixed(1)}%`;

/** A threshold with enough digits to be true: 0.0004 is "0.04%", never "0.0%". */
export const thresholdPercent = (value) => `${Number((value * 100).toPrecision(3))}%`;

/** A model's label for people: "Pleural_Thickening" reads "Pleural Thickening". */
export const displayLabel = (label) => label.replaceAll("_", " ");

export function formatDate(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}
