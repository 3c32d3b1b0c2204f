/** Dark mode: follows the system unless the user picked light or dark (kept in localStorage). */
import { signal } from "@preact/signals";

export type Theme = "system" | "light" | "dark";
const KEY = "parley.theme";
export const theme = signal<Theme>((localStorage.getItem(KEY) as Theme) || "system");

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
