// src/index.ts imports this first: it runs before the rest of the program is loaded, so that
// re-executing with the allocator's settings costs the runtime's start, not the server's.
import { applyAllocatorSettings } from "./allocator";

applyAllocatorSettings();
