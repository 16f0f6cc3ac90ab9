"""Settings for bench/api.py's server and its own process: the product's settings, with a URLconf
that adds a trivial view beside the product's (bench/api_urls.py). Nothing else differs, so the
product's code is measured as it runs. Run directly (as bin/bench does for every bench/*.py) it
only says what it is."""

if __name__ == "__main__":
    print("bench/api_settings.py: settings of bench/api.py; nothing to measure here")
else:
    from project.settings import *  # noqa: F403

    ROOT_URLCONF = "bench.api_urls"
