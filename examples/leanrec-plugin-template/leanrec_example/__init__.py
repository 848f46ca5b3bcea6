"""An example third-party leanrec plugin: copy this folder to start your own."""
