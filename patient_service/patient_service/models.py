"""The patient table, as the migrations build it."""

import uuid
from datetime import date, datetime

from sqlalchemy import ARRAY, CheckConstraint, Date, DateTime, Index, MetaData, SmallInteger, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from painkiller_common.migrations import NAMING_CONVENTION

SEXES = ("male", "female", "other", "unknown")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    mrn: Mapped[str | None] = mapped_column(String(64), unique=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    # Age is stored only when no birth date is known; otherwise it is derived when read.
    birth_date: Mapped[date | None] = mapped_column(Date)
    age: Mapped[int | None] = mapped_column(SmallInteger)
    sex: Mapped[str] = mapped_column(String(10))
    conditions: Mapped[list[str]] = mapped_column(ARRAY(String(200)))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("age IS NULL OR age BETWEEN 0 AND 150", name="age_range"),
        CheckConstraint("birth_date IS NOT NULL OR age IS NOT NULL", name="age_or_birth_date"),
        CheckConstraint(f"sex IN {SEXES}", name="sex_known"),
        Index("ix_patients_created_at_id", "created_at", "id"),
    )
