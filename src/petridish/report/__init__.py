"""Reading runs back: tables for the terminal, exports, and (later) the HTML report."""
