"""Patient messages: templates (clinic -> organization -> built-in), locales, SES/SNS sending."""
