"""Collection campaigns, signal catalogs, vehicle models and decoder manifests: what the cloud
asks vehicles to collect and how they decode it.

Public surface (everything else in this package is internal):

- Campaigns: :func:`create_campaign`, :func:`edit_campaign`, :func:`new_campaign_version`,
  :func:`approve_campaign`, :func:`change_status` (suspend, resume, retire),
  :func:`get_campaign`, :func:`get_campaign_version`, :func:`list_campaigns`,
  :func:`campaign_vehicles`, :func:`set_campaign_policy`, :func:`requires_second_approver`;
  types :class:`CampaignView`, :class:`CampaignVersion`, :class:`CampaignVehicle`,
  :class:`CampaignSpec`; the closed set :data:`CAMPAIGN_STATUSES`.
- Running them: :class:`CampaignRunner` (start and finish on time, continuous targeting;
  delivery is the dispatcher's, ``drivetrain.cloud.commands``).
- Signal catalogs: :func:`tenant_catalog`, :func:`add_catalog_version`,
  :func:`list_catalog_versions`, :class:`CatalogVersion`; the catalog version a decoder
  manifest names: :func:`manifest_catalog_version`.

See docs/campaigns.md.
"""

from drivetrain.cloud.campaigns.catalogs import (
    CatalogVersion,
    add_catalog_version,
    list_catalog_versions,
    tenant_catalog,
)
from drivetrain.cloud.campaigns.definition import CampaignSpec, Destination, Targeting
from drivetrain.cloud.campaigns.lifecycle import CAMPAIGN_STATUSES, CampaignStatus, VehicleState
from drivetrain.cloud.campaigns.manifests import manifest_catalog_version
from drivetrain.cloud.campaigns.runner import CampaignRound, CampaignRunner, run_campaigns
from drivetrain.cloud.campaigns.service import (
    CampaignVehicle,
    CampaignVersion,
    CampaignView,
    approve_campaign,
    campaign_vehicles,
    change_status,
    create_campaign,
    edit_campaign,
    get_campaign,
    get_campaign_version,
    list_campaigns,
    new_campaign_version,
    requires_second_approver,
    set_campaign_policy,
)

__all__ = [
    "CAMPAIGN_STATUSES",
    "CampaignRound",
    "CampaignRunner",
    "CampaignSpec",
    "CampaignStatus",
    "CampaignVehicle",
    "CampaignVersion",
    "CampaignView",
    "CatalogVersion",
    "Destination",
    "Targeting",
    "VehicleState",
    "add_catalog_version",
    "approve_campaign",
    "campaign_vehicles",
    "change_status",
    "create_campaign",
    "edit_campaign",
    "get_campaign",
    "get_campaign_version",
    "list_campaigns",
    "list_catalog_versions",
    "manifest_catalog_version",
    "new_campaign_version",
    "requires_second_approver",
    "run_campaigns",
    "set_campaign_policy",
    "tenant_catalog",
]
