import { render } from "preact";
import { App } from "./app";
import { start } from "./store";
import "./theme";

render(<App />, document.getElementById("app")!);
void start();
