from studio.models.jobs import Job, JobState
from studio.models.teams import Invite, Membership, Role, Team
from studio.models.users import User

__all__ = ["Invite", "Job", "JobState", "Membership", "Role", "Team", "User"]
