"""Built-in attnkata plugins (imported as ``attnkata_plugins``): they use the same hooks as any pack."""
