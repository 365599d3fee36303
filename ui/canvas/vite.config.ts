import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// `base: "./"`: Streamlit serves the component under /component/<name>/, so every asset
// URL in index.html must be relative.
export default defineConfig({
  base: "./",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
