/** Dark mode: follows the system unless the user picked light or dark (kept in localStorage, shared by the browser's tabs). */
import { signal } from "@preact/signals";

export type Theme = "system" | "light" | "dark";
const KEY = "parley.theme";
const stored = (): Theme => {
  const v = localStorage.getItem(KEY);
  return v === "light" || v === "dark" ? v : "system";
};
export const theme = signal<Theme>(stored());

function apply() {
  if (theme.value === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme.value;
}
apply();

export function cycleTheme() {
  theme.value = theme.value === "system" ? "dark" : theme.value === "dark" ? "light" : "system";
  localStorage.setItem(KEY, theme.value);
  apply();
}

// Picked in another tab: this one follows (it stayed as it was until reloaded).
addEventListener("storage", (e) => {
  if (e.storageArea !== localStorage || (e.key !== KEY && e.key !== null)) return;
  theme.value = stored();
  apply();
});
