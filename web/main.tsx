import { render } from "preact";
import { App } from "./app";
import { start } from "./store";
import "./theme";

// A file dropped where the page does not take it (the list, no conversation open, an edit
// under way) is not opened by the browser in the app's place, which went with everything
// typed. Drags of text are left alone (into a text box, say). The open conversation takes
// files dropped on it (conversation.tsx).
for (const type of ["dragover", "drop"]) addEventListener(type, (e) => (e as DragEvent).dataTransfer?.types.includes("Files") && e.preventDefault());

render(<App />, document.getElementById("app")!);
void start();
