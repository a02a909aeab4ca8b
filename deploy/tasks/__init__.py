"""The deploy's concerns, one module each, each a pyinfra ``@deploy`` taking the settings from
``deploy.settings.stack()``; deploy/deploy.py composes them in the order they run."""
