window.addEventListener("load", () => { if (window.mermaid) { mermaid.initialize({ startOnLoad: false }); mermaid.run({ querySelector: ".mermaid" }); } });
