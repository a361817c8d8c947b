"""Every path the two clients call, in one place: the API's documentation reads against this page.

Paths are templates relative to the connection's base URL; :func:`path` fills them in. The ids
put into them are ours to validate (the Variable's mappings, or ids the API returned), never a title.
"""

from __future__ import annotations

import string

# -- Autodesk Construction Cloud (Autodesk Platform Services) -------------------------------------

ACC_BASE_URL = "https://developer.api.autodesk.com"
ACC_TOKEN = "/authentication/v2/token"  # noqa: S105 (a path, not a secret)
ACC_PHOTOS_FILTER = "/construction/photos/v1/projects/{project_id}/photos:filter"
ACC_PHOTO = "/construction/photos/v1/projects/{project_id}/photos/{photo_id}"
ACC_HUBS = "/project/v1/hubs"  # Data Management
ACC_HUB_PROJECTS = "/project/v1/hubs/{hub_id}/projects"

# -- BuildPass -------------------------------------------------------------------------------------

BUILDPASS_BASE_URL = "https://api.buildpass.global"
BUILDPASS_TOKEN = "/oauth/token"  # noqa: S105 (a path, not a secret)
BUILDPASS_BULK_UPLOAD = "/builders/{builder_id}/attachments/bulk-upload"
BUILDPASS_UPLOAD = "/builders/{builder_id}/attachments/upload"
BUILDPASS_BULK_UPSERT = "/builders/{builder_id}/photo-gallery/bulk-upsert"
BUILDPASS_PHOTOS = "/builders/{builder_id}/photos"
BUILDPASS_PHOTO = "/builders/{builder_id}/photos/{photo_id}"
BUILDPASS_FOLDERS = "/builders/{builder_id}/photo-folders"
BUILDPASS_FOLDER = "/builders/{builder_id}/photo-folders/{folder_id}"


def path(template: str, **ids: str) -> str:
    """A template with its ids filled in.

    :raises ValueError: an id the template names is not given, or one it does not name is
        (a misspelt keyword would otherwise go unnoticed)
    """
    names = {field for _, field, _, _ in string.Formatter().parse(template) if field}
    if names != set(ids):
        raise ValueError(f"{template} takes {sorted(names)}, given {sorted(ids)}")
    return template.format(**ids)
