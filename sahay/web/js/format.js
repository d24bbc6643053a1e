// Numbers and dates in words, the same way in every view.

export const percent = (value) => `${(value * 100).toFixed(1)}%`;

export function formatDate(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}
