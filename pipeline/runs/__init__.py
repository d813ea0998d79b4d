"""What looks at finished runs: compare, revisions, the HTML report and its SVG charts, the DVC remote.
Imports only pipeline.core."""
