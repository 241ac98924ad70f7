from tests.portals.fixtures import *  # noqa: F401,F403  (socrata_portal_factory, data_json_portal_factory, ...)
