"""DICOM de-identification: PS3.15 Annex E, Basic Application Level Confidentiality Profile.

Each attribute of table E.1-1 gets the action the standard gives it (``BASIC_PROFILE_CODES``, as
data). Private elements are removed unless allowed. UIDs are replaced by keyed hashes, so one
``Deidentifier`` (one secret) maps the same UID to the same new UID in every file it sees, and a
patient's files keep one pseudonym. Pixel data is never changed, so files whose pixels may carry
burned-in text are refused unless the caller allows them.

Example::

    report = deidentify_path("study/", "study-deid/", DeidOptions(retain_longitudinal_dates=True))
    report.written, report.skipped, report.refused, report.warnings
"""

from __future__ import annotations

import copy
import csv
import hashlib
import hmac
import io
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path

from pydicom.datadict import dictionary_has_tag, keyword_for_tag, repeater_has_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
)

from sahay.about import __version__
from sahay.config import get_settings
from sahay.errors import BadInput, describe_error
from sahay.fileio import atomic_write_bytes, atomic_write_text
from sahay.imaging.dicom_parse import (
    PYDICOM_ERRORS,
    check_structure,
    describe_pydicom_error,
    malformed_attributes,
    parse_dicom,
)
from sahay.imaging.header import looks_like_dicom

DICOM_UID_ROOT = "1.2.840.10008."


class Action(StrEnum):
    """What is done to an attribute; the letters are PS3.15's action codes."""

    KEEP = "K"  # sequences are kept and cleaned item by item
    DUMMY = "D"
    ZERO = "Z"
    REMOVE = "X"
    UID = "U"


# PS3.15 (2024b) table E.1-1, column "Basic Profile": keyword -> action code as the standard writes it.
# Attributes not listed here are kept (sequences cleaned), except private ones and dates and times.
BASIC_PROFILE_CODES: dict[str, str] = {
    "AccessionNumber": "Z",
    "AcquisitionComments": "X",
    "AcquisitionContextSequence": "X/Z",
    "AcquisitionDate": "X/Z",
    "AcquisitionDateTime": "X/Z/D",
    "AcquisitionDeviceProcessingDescription": "X/D",
    "AcquisitionFieldOfViewLabel": "D",
    "AcquisitionProtocolDescription": "X",
    "AcquisitionTime": "X/Z",
    "AcquisitionUID": "U",
    "ActualHumanPerformersSequence": "X",
    "AdditionalPatientHistory": "X",
    "AddressTrial": "X",
    "AdmissionID": "X",
    "AdmittingDate": "X",
    "AdmittingDiagnosesCodeSequence": "X",
    "AdmittingDiagnosesDescription": "X",
    "AdmittingTime": "X",
    "Allergies": "X",
    "AnnotationGroupDescription": "X",
    "AnnotationGroupLabel": "D",
    "AnnotationGroupUID": "D",
    "ApprovalStatusDateTime": "X",
    "Arbitrary": "X",
    "AssertionDateTime": "D",
    "AssertionExpirationDateTime": "X",
    "AttributeModificationDateTime": "D",
    "AuthorObserverSequence": "X",
    "BarcodeValue": "X/Z",
    "BeamDescription": "X",
    "BeamHoldTransitionDateTime": "D",
    "BolusDescription": "X",
    "BranchOfService": "X",
    "CalibrationDate": "X",
    "CalibrationDateTime": "Z",
    "CalibrationTime": "X",
    "CameraOwnerName": "X",
    "CassetteID": "X",
    "CertificateOfSigner": "D",
    "CertifiedTimestamp": "X",
    "ClinicalTrialCoordinatingCenterName": "Z",
    "ClinicalTrialProtocolEthicsCommitteeApprovalNumber": "X",
    "ClinicalTrialProtocolEthicsCommitteeName": "D",
    "ClinicalTrialProtocolID": "D",
    "ClinicalTrialProtocolName": "Z",
    "ClinicalTrialSeriesDescription": "X",
    "ClinicalTrialSeriesID": "X",
    "ClinicalTrialSiteID": "Z",
    "ClinicalTrialSiteName": "Z",
    "ClinicalTrialSponsorName": "D",
    "ClinicalTrialSubjectID": "D",
    "ClinicalTrialSubjectReadingID": "D",
    "ClinicalTrialTimePointDescription": "X",
    "ClinicalTrialTimePointID": "Z",
    "CommentsOnRadiationDose": "X",
    "CommentsOnThePerformedProcedureStep": "X",
    "CompensatorDescription": "X",
    "ConcatenationUID": "U",
    "ConceptualVolumeCombinationDescription": "Z",
    "ConceptualVolumeDescription": "Z",
    "ConceptualVolumeUID": "U",
    "ConfidentialityConstraintOnPatientDataDescription": "X",
    "ConstituentConceptualVolumeUID": "U",
    "ConsultingPhysicianIdentificationSequence": "X",
    "ConsultingPhysicianName": "Z",
    "ContainerComponentID": "X",
    "ContainerDescription": "X",
    "ContainerIdentifier": "D",
    "ContentCreatorIdentificationCodeSequence": "X",
    "ContentCreatorName": "Z/D",
    "ContentDate": "Z/D",
    "ContentSequence": "D",
    "ContentTime": "Z/D",
    "ContextGroupLocalVersion": "D",
    "ContextGroupVersion": "D",
    "ContrastBolusAgent": "Z/D",
    "ContrastBolusStartTime": "X",
    "ContrastBolusStopTime": "X",
    "ContributionDateTime": "X",
    "ContributionDescription": "X",
    "CountryOfResidence": "X",
    "CreationDate": "X",
    "CreationTime": "X",
    "CurrentObserverTrial": "X",
    "CurrentPatientLocation": "X",
    "CurveDate": "X",
    "CurveTime": "X",
    "CustodialOrganizationSequence": "X",
    "DataSetTrailingPadding": "X",
    "Date": "D",
    "DateOfDocumentOrVerbalTransactionTrial": "X",
    "DateOfInstallation": "X",
    "DateOfLastCalibration": "X",
    "DateOfLastDetectorCalibration": "X/D",
    "DateOfManufacture": "X",
    "DateOfSecondaryCapture": "X",
    "DateTime": "D",
    "DateTimeOfLastCalibration": "X",
    "DecayCorrectionDateTime": "D",
    "DecompositionDescription": "X",
    "DerivationDescription": "X",
    "DestinationAE": "D",
    "DetectorID": "X/D",
    "DeviceAlternateIdentifier": "Z",
    "DeviceDescription": "X",
    "DeviceLabel": "D",
    "DeviceSerialNumber": "X/Z/D",
    "DeviceSettingDescription": "X",
    "DeviceUID": "U",
    "DigitalSignatureDateTime": "D",
    "DigitalSignatureUID": "U",
    "DigitalSignaturesSequence": "X",
    "DimensionOrganizationUID": "U",
    "DischargeDate": "X",
    "DischargeDiagnosisDescription": "X",
    "DischargeTime": "X",
    "DisplacementReferenceLabel": "X",
    "DistributionAddress": "X",
    "DistributionName": "X",
    "DoseReferenceDescription": "X",
    "DoseReferenceUID": "U",
    "DosimetricObjectiveUID": "U",
    "EffectiveDateTime": "D",
    "EncapsulatedDocument": "D",
    "EndAcquisitionDateTime": "X/D",
    "EntityDescription": "X",
    "EntityLabel": "D",
    "EntityLongLabel": "D",
    "EntityName": "X",
    "EquipmentFrameOfReferenceDescription": "X",
    "EthicsCommitteeApprovalEffectivenessEndDate": "X",
    "EthicsCommitteeApprovalEffectivenessStartDate": "X",
    "EthnicGroup": "X",
    "ExclusionStartDateTime": "D",
    "ExpectedCompletionDateTime": "X",
    "FailedSOPInstanceUIDList": "U",
    "FiducialUID": "U",
    "FillerOrderNumberImagingServiceRequest": "Z",
    "FilterLookupTableDescription": "X",
    "FindingsGroupRecordingDateTrial": "X",
    "FindingsGroupRecordingTimeTrial": "X",
    "FirstTreatmentDate": "X/D",
    "FixationDeviceDescription": "X",
    "FlowIdentifier": "D",
    "FlowIdentifierSequence": "D",
    "FractionGroupDescription": "X",
    "FractionationNotes": "Z",
    "FrameAcquisitionDateTime": "D",
    "FrameComments": "X",
    "FrameOfReferenceUID": "U",
    "FrameOriginTimestamp": "D",
    "FrameReferenceDateTime": "D",
    "FunctionalSyncPulse": "D",
    "GPSAltitude": "X",
    "GPSAltitudeRef": "X",
    "GPSAreaInformation": "X",
    "GPSDOP": "X",
    "GPSDateStamp": "X",
    "GPSDestBearing": "X",
    "GPSDestBearingRef": "X",
    "GPSDestDistance": "X",
    "GPSDestDistanceRef": "X",
    "GPSDestLatitude": "X",
    "GPSDestLatitudeRef": "X",
    "GPSDestLongitude": "X",
    "GPSDestLongitudeRef": "X",
    "GPSDifferential": "X",
    "GPSImgDirection": "X",
    "GPSImgDirectionRef": "X",
    "GPSLatitude": "X",
    "GPSLatitudeRef": "X",
    "GPSLongitude": "X",
    "GPSLongitudeRef": "X",
    "GPSMapDatum": "X",
    "GPSMeasureMode": "X",
    "GPSProcessingMethod": "X",
    "GPSSatellites": "X",
    "GPSSpeed": "X",
    "GPSSpeedRef": "X",
    "GPSStatus": "X",
    "GPSTimeStamp": "X",
    "GPSTrack": "X",
    "GPSTrackRef": "X",
    "GPSVersionID": "X",
    "GantryID": "X",
    "GeneratorID": "X",
    "GraphicAnnotationSequence": "D",
    "HL7DocumentEffectiveTime": "X",
    "HangingProtocolCreationDateTime": "D",
    "HumanPerformerName": "X",
    "HumanPerformerOrganization": "X",
    "IconImageSequence": "X",
    "IdentifyingComments": "X",
    "ImageComments": "X",
    "ImagePresentationComments": "X",
    "ImagingServiceRequestComments": "X",
    "ImpedanceMeasurementDateTime": "D",
    "Impressions": "X",
    "InformationIssueDateTime": "D",
    "InstanceCoercionDateTime": "X",
    "InstanceCreationDate": "X/D",
    "InstanceCreationTime": "X/Z/D",
    "InstanceCreatorUID": "U",
    "InstanceOriginStatus": "X",
    "InstitutionAddress": "X",
    "InstitutionCodeSequence": "X/Z/D",
    "InstitutionName": "X/Z/D",
    "InstitutionalDepartmentName": "X",
    "InstitutionalDepartmentTypeCodeSequence": "X",
    "InstructionPerformedDateTime": "Z/D",
    "InsurancePlanIdentification": "X",
    "IntendedFractionStartTime": "X",
    "IntendedPhaseEndDate": "X/D",
    "IntendedPhaseStartDate": "X/D",
    "IntendedRecipientsOfResultsIdentificationSequence": "X",
    "InterlockDateTime": "D",
    "InterlockDescription": "D",
    "InterlockOriginDescription": "D",
    "InterpretationApprovalDate": "X",
    "InterpretationApprovalTime": "X",
    "InterpretationApproverSequence": "X",
    "InterpretationAuthor": "X",
    "InterpretationDiagnosisDescription": "X",
    "InterpretationID": "X",
    "InterpretationIDIssuer": "X",
    "InterpretationRecordedDate": "X",
    "InterpretationRecordedTime": "X",
    "InterpretationRecorder": "X",
    "InterpretationText": "X",
    "InterpretationTranscriber": "X",
    "InterpretationTranscriptionDate": "X",
    "InterpretationTranscriptionTime": "X",
    "InterventionDrugStartTime": "X",
    "InterventionDrugStopTime": "X",
    "IrradiationEventUID": "U",
    "IssueDateOfImagingServiceRequest": "X",
    "IssueTimeOfImagingServiceRequest": "X",
    "IssuerOfAdmissionID": "X",
    "IssuerOfAdmissionIDSequence": "X",
    "IssuerOfClinicalTrialProtocolID": "X",
    "IssuerOfClinicalTrialSeriesID": "X",
    "IssuerOfClinicalTrialSiteID": "X",
    "IssuerOfClinicalTrialSubjectID": "X",
    "IssuerOfClinicalTrialSubjectReadingID": "X",
    "IssuerOfClinicalTrialTimePointID": "X",
    "IssuerOfPatientID": "X",
    "IssuerOfServiceEpisodeID": "X",
    "IssuerOfServiceEpisodeIDSequence": "X",
    "IssuerOfTheContainerIdentifierSequence": "Z",
    "IssuerOfTheSpecimenIdentifierSequence": "Z",
    "LabelText": "X/Z",
    "LargePaletteColorLookupTableUID": "U",
    "LastMenstrualDate": "X",
    "LensMake": "X",
    "LensModel": "X",
    "LensSerialNumber": "X",
    "LensSpecification": "X",
    "LongDeviceDescription": "X",
    "MAC": "X",
    "MakerNote": "X",
    "ManufacturerDeviceClassUID": "U",
    "ManufacturerDeviceIdentifier": "Z",
    "MediaStorageSOPInstanceUID": "U",
    "MedicalAlerts": "X",
    "MedicalRecordLocator": "X",
    "MilitaryRank": "X",
    "ModifiedAttributesSequence": "X",
    "ModifiedImageDate": "X",
    "ModifiedImageDescription": "X",
    "ModifiedImageTime": "X",
    "ModifyingDeviceID": "X",
    "ModifyingSystem": "D",
    "MostRecentTreatmentDate": "X/D",
    "MultienergyAcquisitionDescription": "X",
    "MultiplexGroupUID": "U",
    "NameOfPhysiciansReadingStudy": "X",
    "NamesOfIntendedRecipientsOfResults": "X",
    "NetworkID": "X",
    "NonconformingDataElementValue": "X",
    "NonconformingModifiedAttributesSequence": "X",
    "ObservationDateTime": "X/D",
    "ObservationDateTrial": "X",
    "ObservationStartDateTime": "X",
    "ObservationSubjectUIDTrial": "U",
    "ObservationTimeTrial": "X",
    "ObservationUID": "U",
    "Occupation": "X",
    "OperatorIdentificationSequence": "X/D",
    "OperatorsName": "X/Z/D",
    "OrderCallbackPhoneNumber": "X",
    "OrderCallbackTelecomInformation": "X",
    "OrderEnteredBy": "X",
    "OrderEntererLocation": "X",
    "OriginalAttributesSequence": "X",
    "Originator": "X",
    "OtherClinicalTrialProtocolIDsSequence": "X",
    "OtherPatientIDs": "X",
    "OtherPatientIDsSequence": "X",
    "OtherPatientNames": "X",
    "OverlayDate": "X",
    "OverlayTime": "X",
    "OverrideDateTime": "D",
    "PaletteColorLookupTableUID": "U",
    "ParticipantSequence": "X",
    "ParticipationDateTime": "Z",
    "PatientAddress": "X",
    "PatientAge": "X",
    "PatientBirthDate": "Z",
    "PatientBirthName": "X",
    "PatientBirthTime": "X",
    "PatientComments": "X",
    "PatientID": "Z/D",
    "PatientInstitutionResidence": "X",
    "PatientInsurancePlanCodeSequence": "X",
    "PatientMotherBirthName": "X",
    "PatientName": "Z",
    "PatientPrimaryLanguageCodeSequence": "X",
    "PatientPrimaryLanguageModifierCodeSequence": "X",
    "PatientReligiousPreference": "X",
    "PatientSetupPhotoDescription": "X",
    "PatientSetupUID": "U",
    "PatientSex": "Z",
    "PatientSexNeutered": "X/Z",
    "PatientSize": "X",
    "PatientState": "X",
    "PatientTelecomInformation": "X",
    "PatientTelephoneNumbers": "X",
    "PatientTransportArrangements": "X",
    "PatientTreatmentPreparationMethodDescription": "X",
    "PatientTreatmentPreparationProcedureParameterDescription": "X",
    "PatientWeight": "X",
    "PerformedLocation": "X",
    "PerformedProcedureStepDescription": "X",
    "PerformedProcedureStepEndDate": "X",
    "PerformedProcedureStepEndDateTime": "X",
    "PerformedProcedureStepEndTime": "X",
    "PerformedProcedureStepID": "X",
    "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartDateTime": "X",
    "PerformedProcedureStepStartTime": "X",
    "PerformedStationAETitle": "X",
    "PerformedStationGeographicLocationCodeSequence": "X",
    "PerformedStationName": "X",
    "PerformedStationNameCodeSequence": "X",
    "PerformingPhysicianIdentificationSequence": "X",
    "PerformingPhysicianName": "X",
    "PersonAddress": "X",
    "PersonIdentificationCodeSequence": "D",
    "PersonName": "D",
    "PersonTelecomInformation": "X",
    "PersonTelephoneNumbers": "X",
    "PhysicianApprovingInterpretation": "X",
    "PhysiciansOfRecord": "X",
    "PhysiciansOfRecordIdentificationSequence": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X",
    "PlacerOrderNumberImagingServiceRequest": "Z",
    "PlateID": "X",
    "PositionAcquisitionTemplateDescription": "X",
    "PositionAcquisitionTemplateName": "X",
    "PreMedication": "X",
    "PregnancyStatus": "X",
    "PrescriptionDescription": "X",
    "PrescriptionNotes": "Z",
    "PrescriptionNotesSequence": "Z",
    "PresentationCreationDate": "X",
    "PresentationCreationTime": "X",
    "PresentationDisplayCollectionUID": "U",
    "PresentationSequenceCollectionUID": "U",
    "PriorTreatmentDoseDescription": "X",
    "ProcedureStepCancellationDateTime": "X",
    "ProductExpirationDateTime": "X",
    "ProtocolName": "X/D",
    "PyramidDescription": "X",
    "PyramidLabel": "X",
    "PyramidUID": "U",
    "ROICreatorSequence": "X",
    "ROIDateTime": "X",
    "ROIDescription": "X",
    "ROIGenerationDescription": "X",
    "ROIInterpreter": "Z",
    "ROIInterpreterSequence": "X",
    "ROIName": "Z",
    "ROIObservationDateTime": "X",
    "ROIObservationDescription": "X",
    "ROIObservationLabel": "X",
    "RTAccessoryDeviceSlotID": "Z",
    "RTAccessoryHolderSlotID": "Z",
    "RTPhysicianIntentNarrative": "Z",
    "RTPlanDate": "X/D",
    "RTPlanDescription": "X",
    "RTPlanLabel": "D",
    "RTPlanName": "X",
    "RTPlanTime": "X/D",
    "RTPrescriptionLabel": "D",
    "RTToleranceSetLabel": "D",
    "RTTreatmentApproachLabel": "X/D",
    "RTTreatmentPhaseUID": "U",
    "RadiationDoseIdentificationLabel": "D",
    "RadiationDoseInVivoMeasurementLabel": "D",
    "RadiationGenerationModeDescription": "Z",
    "RadiationGenerationModeLabel": "D",
    "RadiopharmaceuticalStartDateTime": "X",
    "RadiopharmaceuticalStartTime": "X",
    "RadiopharmaceuticalStopDateTime": "X",
    "RadiopharmaceuticalStopTime": "X",
    "ReasonForOmissionDescription": "X",
    "ReasonForRequestedProcedureCodeSequence": "X",
    "ReasonForStudy": "X",
    "ReasonForSuperseding": "Z",
    "ReasonForTheAttributeModification": "D",
    "ReasonForTheImagingServiceRequest": "X",
    "ReasonForTheRequestedProcedure": "X",
    "ReasonForVisit": "X",
    "ReasonForVisitCodeSequence": "X",
    "ReceivingAE": "X",
    "RecordedRTControlPointDateTime": "D",
    "ReferencedConceptualVolumeUID": "U",
    "ReferencedDateTime": "D",
    "ReferencedDigitalSignatureSequence": "X",
    "ReferencedDoseReferenceUID": "U",
    "ReferencedDosimetricObjectiveUID": "U",
    "ReferencedFiducialsUID": "U",
    "ReferencedFrameOfReferenceUID": "U",
    "ReferencedGeneralPurposeScheduledProcedureStepTransactionUID": "U",
    "ReferencedImageSequence": "X/Z/U*",
    "ReferencedObservationUIDTrial": "U",
    "ReferencedPatientAliasSequence": "X",
    "ReferencedPatientPhotoSequence": "X",
    "ReferencedPatientSequence": "X",
    "ReferencedPerformedProcedureStepSequence": "X/Z/D",
    "ReferencedSOPInstanceMACSequence": "X",
    "ReferencedSOPInstanceUID": "U",
    "ReferencedSOPInstanceUIDInFile": "U",
    "ReferencedStudySequence": "X/Z",
    "ReferencedTreatmentPositionGroupUID": "U",
    "ReferringPhysicianAddress": "X",
    "ReferringPhysicianIdentificationSequence": "X",
    "ReferringPhysicianName": "Z",
    "ReferringPhysicianTelephoneNumbers": "X",
    "RegionOfResidence": "X",
    "RelatedFrameOfReferenceUID": "U",
    "RequestAttributesSequence": "X",
    "RequestedContrastAgent": "X",
    "RequestedProcedureComments": "X",
    "RequestedProcedureDescription": "X/Z",
    "RequestedProcedureID": "X",
    "RequestedProcedureLocation": "X",
    "RequestedSeriesDescription": "X",
    "RequestingAE": "X",
    "RequestingPhysician": "X",
    "RequestingService": "X",
    "RespiratoryMotionCompensationTechniqueDescription": "X",
    "ResponsibleOrganization": "X",
    "ResponsiblePerson": "X",
    "ResultsComments": "X",
    "ResultsDistributionListSequence": "X",
    "ResultsID": "X",
    "ResultsIDIssuer": "X",
    "RetrieveAETitle": "X",
    "ReviewDate": "Z",
    "ReviewTime": "Z",
    "ReviewerName": "X/Z",
    "SOPAuthorizationDateTime": "X",
    "SOPInstanceUID": "U",
    "SafePositionExitDate": "D",
    "SafePositionExitTime": "D",
    "SafePositionReturnDate": "D",
    "SafePositionReturnTime": "D",
    "ScheduledAdmissionDate": "X",
    "ScheduledAdmissionTime": "X",
    "ScheduledDischargeDate": "X",
    "ScheduledDischargeTime": "X",
    "ScheduledHumanPerformersSequence": "X",
    "ScheduledPatientInstitutionResidence": "X",
    "ScheduledPerformingPhysicianIdentificationSequence": "X",
    "ScheduledPerformingPhysicianName": "X",
    "ScheduledProcedureStepDescription": "X",
    "ScheduledProcedureStepEndDate": "X",
    "ScheduledProcedureStepEndTime": "X",
    "ScheduledProcedureStepExpirationDateTime": "X",
    "ScheduledProcedureStepID": "X",
    "ScheduledProcedureStepLocation": "X",
    "ScheduledProcedureStepModificationDateTime": "X",
    "ScheduledProcedureStepStartDate": "X",
    "ScheduledProcedureStepStartDateTime": "X",
    "ScheduledProcedureStepStartTime": "X",
    "ScheduledStationAETitle": "X",
    "ScheduledStationGeographicLocationCodeSequence": "X",
    "ScheduledStationName": "X",
    "ScheduledStationNameCodeSequence": "X",
    "ScheduledStudyLocation": "X",
    "ScheduledStudyLocationAETitle": "X",
    "ScheduledStudyStartDate": "X",
    "ScheduledStudyStartTime": "X",
    "ScheduledStudyStopDate": "X",
    "ScheduledStudyStopTime": "X",
    "SelectorAEValue": "D",
    "SelectorASValue": "D",
    "SelectorDAValue": "D",
    "SelectorDTValue": "D",
    "SelectorLOValue": "D",
    "SelectorLTValue": "D",
    "SelectorOBValue": "D",
    "SelectorPNValue": "D",
    "SelectorSHValue": "D",
    "SelectorSTValue": "D",
    "SelectorTMValue": "D",
    "SelectorUNValue": "D",
    "SelectorURValue": "D",
    "SelectorUTValue": "D",
    "SeriesDate": "X/D",
    "SeriesDescription": "X",
    "SeriesInstanceUID": "U",
    "SeriesTime": "X/D",
    "ServiceEpisodeDescription": "X",
    "ServiceEpisodeID": "X",
    "SetupTechniqueDescription": "X",
    "ShieldingDeviceDescription": "X",
    "SlideIdentifier": "X",
    "SmokingStatus": "X",
    "SourceConceptualVolumeUID": "U",
    "SourceEndDateTime": "D",
    "SourceFrameOfReferenceUID": "U",
    "SourceIdentifier": "D",
    "SourceImageSequence": "X/Z/U*",
    "SourceManufacturer": "X",
    "SourceOfPreviousValues": "Z",
    "SourceSerialNumber": "X/Z",
    "SourceStartDateTime": "D",
    "SourceStrengthReferenceDate": "D",
    "SourceStrengthReferenceTime": "D",
    "SpecialNeeds": "X",
    "SpecimenAccessionNumber": "X",
    "SpecimenDetailedDescription": "X",
    "SpecimenIdentifier": "D",
    "SpecimenPreparationSequence": "Z",
    "SpecimenShortDescription": "X",
    "SpecimenUID": "U",
    "StartAcquisitionDateTime": "X/D",
    "StationAETitle": "X",
    "StationName": "X/Z/D",
    "StorageMediaFileSetUID": "U",
    "StructureSetDate": "Z",
    "StructureSetDescription": "X",
    "StructureSetLabel": "D",
    "StructureSetName": "X",
    "StructureSetTime": "Z",
    "StudyArrivalDate": "X",
    "StudyArrivalTime": "X",
    "StudyComments": "X",
    "StudyCompletionDate": "X",
    "StudyCompletionTime": "X",
    "StudyDate": "Z",
    "StudyDescription": "X",
    "StudyID": "Z",
    "StudyIDIssuer": "X",
    "StudyInstanceUID": "U",
    "StudyReadDate": "X",
    "StudyReadTime": "X",
    "StudyTime": "Z",
    "StudyVerifiedDate": "X",
    "StudyVerifiedTime": "X",
    "SubstanceAdministrationDateTime": "X",
    "SynchronizationFrameOfReferenceUID": "U",
    "TargetUID": "U",
    "TelephoneNumberTrial": "X",
    "TemplateExtensionCreatorUID": "U",
    "TemplateExtensionOrganizationUID": "U",
    "TemplateLocalVersion": "X",
    "TemplateVersion": "X",
    "TextComments": "X",
    "TextString": "X",
    "Time": "D",
    "TimeOfDocumentCreationOrVerbalTransactionTrial": "X",
    "TimeOfLastCalibration": "X",
    "TimeOfLastDetectorCalibration": "X/D",
    "TimeOfSecondaryCapture": "X",
    "TimezoneOffsetFromUTC": "X",
    "TopicAuthor": "X",
    "TopicKeywords": "X",
    "TopicSubject": "X",
    "TopicTitle": "X",
    "TrackingUID": "U",
    "TransactionUID": "U",
    "TransducerIdentificationSequence": "X",
    "TreatmentControlPointDate": "D",
    "TreatmentControlPointTime": "D",
    "TreatmentDate": "X/D",
    "TreatmentMachineName": "X/Z",
    "TreatmentPositionGroupLabel": "D",
    "TreatmentPositionGroupUID": "U",
    "TreatmentSessionUID": "U",
    "TreatmentSite": "X/D",
    "TreatmentSites": "X",
    "TreatmentTechniqueNotes": "Z",
    "TreatmentTime": "X/D",
    "TreatmentToleranceViolationDateTime": "D",
    "TreatmentToleranceViolationDescription": "D",
    "UDISequence": "X",
    "UID": "U",
    "UniqueDeviceIdentifier": "X",
    "UserContentLabel": "D",
    "UserContentLongLabel": "D",
    "VerbalSourceIdentifierCodeSequenceTrial": "X",
    "VerbalSourceTrial": "X",
    "VerificationDateTime": "D",
    "VerifyingObserverIdentificationCodeSequence": "Z",
    "VerifyingObserverName": "D",
    "VerifyingObserverSequence": "D",
    "VerifyingOrganization": "D",
    "VisitComments": "X",
    "WaveformFilterDescription": "X",
    "XRayDetectorID": "D",
    "XRayDetectorLabel": "X",
    "XRaySourceID": "D",
}

# Not in table E.1-1 but as identifying as their listed neighbours, so removed too.
SAHAY_ADDITIONS: dict[str, str] = {
    "IssuerOfAccessionNumberSequence": "X",
    "IssuerOfPatientIDQualifiersSequence": "X",
    "PatientBirthDateInAlternativeCalendar": "X",
    "PatientDeathDateInAlternativeCalendar": "X",
}

# A combined code means "the first, unless the IOD needs more" (Type 3 / 2 / 1). Sahay does not
# know every IOD's attribute types, so it takes the action that is valid in all of them; none of
# the choices keeps an identifying value.
RESOLVED_CODES: dict[str, Action] = {
    "D": Action.DUMMY,
    "Z": Action.ZERO,
    "X": Action.REMOVE,
    "K": Action.KEEP,
    "U": Action.UID,
    "Z/D": Action.DUMMY,
    "X/Z": Action.ZERO,
    "X/D": Action.DUMMY,
    "X/Z/D": Action.DUMMY,
    "X/Z/U*": Action.KEEP,  # the reference sequence stays; the instance UIDs inside it are replaced
}

BASIC_PROFILE: dict[BaseTag, Action] = {
    Tag(keyword): RESOLVED_CODES[code] for keyword, code in {**BASIC_PROFILE_CODES, **SAHAY_ADDITIONS}.items()
}

# Kept by the Retain Patient Characteristics Option (its column K). The option's free-text "C"
# attributes (allergies, history, ...) stay removed: Sahay has no text cleaner it can vouch for.
PATIENT_CHARACTERISTICS = frozenset(
    Tag(keyword)
    for keyword in (
        "PatientAge",
        "PatientSex",
        "PatientSexNeutered",
        "PatientSize",
        "PatientWeight",
        "EthnicGroup",
        "SmokingStatus",
        "PregnancyStatus",
    )
)

# Never shifted: a birth date moved by days still tells the age to the day.
NEVER_SHIFTED = frozenset((Tag("PatientBirthDate"), Tag("PatientBirthTime")))

_TEMPORAL_VRS = ("DA", "DT", "TM")
_DUMMY_TEXT = "ANONYMOUS"
_DUMMY_VALUES: dict[str, object] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
    **dict.fromkeys(("US", "SS", "UL", "SL", "UV", "SV", "AT"), 0),
    **dict.fromkeys(("FL", "FD"), 0.0),
    **dict.fromkeys(("OB", "OD", "OF", "OL", "OV", "OW", "UN"), bytes(8)),
}

_SECONDARY_CAPTURE = frozenset(
    ("1.2.840.10008.5.1.4.1.1.7", *(f"1.2.840.10008.5.1.4.1.1.7.{n}" for n in range(1, 5)))
)

# Modalities (0008,0060) whose images often carry burned-in text (names, dates, IDs drawn by the
# device or a capture card): without Burned In Annotation (0028,0301) they get a warning.
BURNED_IN_MODALITIES: dict[str, str] = {
    "US": "Ultrasound",
    "IVUS": "Intravascular ultrasound",
    "ES": "Endoscopy",
    "XA": "X-ray angiography",
    "RF": "Radiofluoroscopy",
    "XC": "External-camera photography",
    "OP": "Ophthalmic photography",
    "GM": "General microscopy",
    "SM": "Slide microscopy",
    "DOC": "Document",
}

# PS3.16 CID 7050 "De-identification Method" codes (scheme DCM).
_BASIC_CODE = ("113100", "Basic Application Confidentiality Profile")
_DATES_CODE = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
_PATIENT_CODE = ("113108", "Retain Patient Characteristics Option")
_PRIVATE_CODE = ("113111", "Retain Safe Private Option")

MIN_SECRET_BYTES = 16
_SHIFT_DAYS = (365, 3652)  # dates move back by 1 to 10 years


@dataclass(frozen=True)
class DeidOptions:
    """What to keep beyond the basic profile. Each retain option adds its PS3.16 code to the output."""

    retain_longitudinal_dates: bool = False
    """Shift dates back by a whole number of days, one per patient, instead of removing them; keep
    times (113107). Intervals between a patient's studies are preserved."""
    retain_patient_characteristics: bool = False
    """Keep sex, age, size, weight, ethnic group, smoking and pregnancy status (113108)."""
    allow_burned_in: bool = False
    """Process images marked Burned In Annotation YES, with a warning: their pixels are not cleaned."""
    keep_private_tags: frozenset[int] = frozenset()
    """Private data elements to keep, as exact tags such as 0x00091001 (113111)."""
    keep_private_creators: frozenset[str] = frozenset()
    """Private creators whose whole blocks are kept, wherever the block lands (113111)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_private_tags", frozenset(self.keep_private_tags))
        object.__setattr__(self, "keep_private_creators", frozenset(self.keep_private_creators))
        for value in self.keep_private_tags:
            tag = Tag(value)
            if not tag.is_private or tag.element < 0x1000:
                raise BadInput(
                    f"{_tag_text(tag)} is not a private data element; only those can be kept "
                    "(public attributes follow PS3.15 table E.1-1; a kept element keeps its private creator)."
                )

    @property
    def keeps_private(self) -> bool:
        return bool(self.keep_private_tags or self.keep_private_creators)


@dataclass
class DeidReport:
    """What ``deidentify_path`` did. Keys are paths relative to the input folder (or the file name)."""

    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Files that are not DICOM, with the reason."""
    refused: dict[str, str] = field(default_factory=dict)
    """DICOM files not written (burned-in text, corrupt), with the reason."""
    warnings: dict[str, list[str]] = field(default_factory=dict)
    """Warnings about written files."""


class Deidentifier:
    """Applies the profile with one secret, so UIDs and pseudonyms agree across every file it sees.

    Without ``secret`` a random one is drawn, so nothing links this run's output to another run's.
    Give the same secret (``load_secret``) to map the same inputs to the same outputs in later runs.
    ``uid_map`` and ``patient_map`` record what was replaced, for ``write_mapping``.
    """

    def __init__(self, options: DeidOptions | None = None, secret: bytes | None = None) -> None:
        if secret is not None and len(secret) < MIN_SECRET_BYTES:
            raise BadInput(f"the de-identification secret needs at least {MIN_SECRET_BYTES} bytes.")
        self.options = options or DeidOptions()
        self._secret = secrets.token_bytes(32) if secret is None else secret
        self.uid_map: dict[str, str] = {}
        self.patient_map: dict[str, str] = {}

    def new_uid(self, uid: str) -> str:
        """The replacement for ``uid``: the same input always gives the same output for one secret."""
        uid = uid.strip("\0 ")
        if uid and uid not in self.uid_map:
            # 2.25 is the root for UIDs made of one integer; 128 bits keep it within 64 characters.
            self.uid_map[uid] = f"2.25.{int.from_bytes(self._digest(uid)[:16], 'big')}"
        return self.uid_map.get(uid, uid)

    def pseudonym(self, patient_key: str) -> str:
        """The new Patient ID and Name for a patient, e.g. ``ANON-3FA2C94B1D``."""
        if patient_key not in self.patient_map:
            self.patient_map[patient_key] = (
                "ANON-" + self._digest("patient:" + patient_key).hex()[:10].upper()
            )
        return self.patient_map[patient_key]

    def date_offset(self, patient_key: str) -> timedelta:
        """How far back a patient's dates move: whole days, so intervals and times of day stay."""
        low, high = _SHIFT_DAYS
        number = int.from_bytes(self._digest("dates:" + patient_key)[:8], "big")
        return timedelta(days=low + number % (high - low + 1))

    def dataset(self, ds: Dataset, *, name: str = "the dataset") -> tuple[Dataset, list[str]]:
        """A de-identified copy of ``ds`` (``ds`` is not changed) and warnings for the user.

        Raises BadInput naming ``name`` for images marked as having burned-in text (unless
        ``allow_burned_in``), for malformed attributes and for sequences nested too deep.
        """
        check_structure(ds, name)
        return self._deidentify(ds, name)

    def _deidentify(self, ds: Dataset, name: str) -> tuple[Dataset, list[str]]:
        """``dataset`` for a dataset ``parse_dicom`` has checked already."""
        warnings: list[str] = []
        with malformed_attributes(name):
            self._check_burned_in(ds, name, warnings)
            out = copy.deepcopy(ds)
            out.preamble = b"\0" * 128  # the preamble is free for any use (dual DICOM/TIFF files carry data)
            key = _patient_key(ds)
            shift = self.date_offset(key) if self.options.retain_longitudinal_dates else None
            self._clean(out, shift, warnings)
            self._mark(out, key)
            out.file_meta = self._file_meta(ds, out)
        return out, warnings

    def file(self, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> list[str]:
        """De-identify one DICOM file into ``dst`` (written atomically) and return its warnings."""
        src = Path(src)
        if not looks_like_dicom(_head(src)):
            raise BadInput(f"{src} is not a DICOM file (no DICM marker or DICOM header).")
        return self._write(_read(src), str(src), Path(dst))

    def write_mapping(self, path: str | os.PathLike[str]) -> None:
        """Write what was replaced as CSV (kind, original, replacement). It re-identifies: keep it apart."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(("kind", "original", "replacement"))
        writer.writerows(("uid", old, new) for old, new in self.uid_map.items())
        writer.writerows(("patient", key, pseudonym) for key, pseudonym in self.patient_map.items())
        if self.options.retain_longitudinal_dates:
            writer.writerows(
                ("date_shift_days", key, -self.date_offset(key).days) for key in self.patient_map
            )
        atomic_write_text(Path(path), buffer.getvalue())

    def _write(self, data: bytes, name: str, dst: Path) -> list[str]:
        ds = _parse(data, name)
        meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        if meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
            # Its record offsets would go stale; a viewer can rebuild the index from the output.
            raise BadInput(
                f"{name} is a DICOMDIR index, which is not de-identified; rebuild it from the output."
            )
        with malformed_attributes(name):
            meta_warning = _check_identifiable(ds, meta, name)
        out, warnings = self._deidentify(ds, name)
        if meta_warning:
            warnings.insert(0, meta_warning)
        buffer = io.BytesIO()
        try:
            out.save_as(buffer, enforce_file_format=True)
        except PYDICOM_ERRORS as exc:  # e.g. a value its character set cannot encode
            raise BadInput(
                f"{name} could not be written after de-identification ({describe_pydicom_error(exc)})."
            ) from exc
        atomic_write_bytes(dst, buffer.getvalue())
        return warnings

    def _digest(self, message: str) -> bytes:
        return hmac.new(self._secret, message.encode("utf-8"), hashlib.sha256).digest()

    def _check_burned_in(self, ds: Dataset, name: str, warnings: list[str]) -> None:
        burned_in = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
        if burned_in == "YES":
            if not self.options.allow_burned_in:
                raise BadInput(
                    f"{name} has Burned In Annotation (0028,0301) YES: its pixels may show identifying "
                    "text, which de-identification does not remove. Clean the pixels first, or allow it "
                    "(--allow-burned-in) and check the output image by eye."
                )
            warnings.append("Burned In Annotation (0028,0301) is YES: text in the pixels was not removed.")
        elif not burned_in and (risk := _burned_in_risk(ds)):
            warnings.append(
                f"{risk} without Burned In Annotation (0028,0301): check its pixels for text before sharing."
            )

    def _clean(self, ds: Dataset, shift: timedelta | None, warnings: list[str]) -> None:
        tags = list(ds.keys())
        kept_blocks = {_creator_tag(tag) for tag in tags if self._keeps_private(ds, tag)}
        for tag in tags:
            if tag.is_private:
                if tag in kept_blocks or self._keeps_private(ds, tag):
                    self._clean_items(ds[tag], shift, warnings)
                else:
                    del ds[tag]
            elif tag.element == 0 or tag.group == 0x0002 or _is_overlay_or_curve(tag.group):
                # Group lengths go stale; file meta belongs in file_meta; overlays and curves may
                # carry drawn text or annotations (table E.1-1 removes their data and comments).
                del ds[tag]
            elif not (dictionary_has_tag(tag) or repeater_has_tag(tag)):
                del ds[tag]  # a public attribute newer than pydicom's dictionary cannot be judged
            else:
                self._apply(ds, ds[tag], shift, warnings)

    def _keeps_private(self, ds: Dataset, tag: BaseTag) -> bool:
        if not tag.is_private or tag.element < 0x1000:
            return False  # private creators are kept with the blocks they reserve
        if tag in self.options.keep_private_tags:
            return True
        creator = ds.get(_creator_tag(tag))
        return creator is not None and str(creator.value).strip() in self.options.keep_private_creators

    def _clean_items(self, elem: DataElement, shift: timedelta | None, warnings: list[str]) -> None:
        if elem.VR == "SQ":
            for item in elem.value:
                self._clean(item, shift, warnings)

    def _action(self, tag: BaseTag, vr: str) -> Action | None:
        """The action for one attribute; None means "shift it" (dates) or "keep it" (times)."""
        if self.options.retain_patient_characteristics and tag in PATIENT_CHARACTERISTICS:
            return Action.KEEP
        if vr == "UI" and tag not in BASIC_PROFILE:
            # Instance UIDs outside the table (e.g. Multi-frame Source SOP Instance UID) would link
            # back to the source; class, syntax and coding-scheme UIDs name definitions, not instances.
            keyword = keyword_for_tag(tag)
            definition = keyword.endswith(("ClassUID", "SyntaxUID")) or "CodingScheme" in keyword
            return Action.KEEP if definition else Action.UID
        if vr in _TEMPORAL_VRS and tag not in NEVER_SHIFTED:
            if self.options.retain_longitudinal_dates:
                return None
            if tag not in BASIC_PROFILE:
                # PS3.15 lets any further date or time be treated like the listed ones.
                return Action.ZERO
        return BASIC_PROFILE.get(tag, Action.KEEP)

    def _apply(self, ds: Dataset, elem: DataElement, shift: timedelta | None, warnings: list[str]) -> None:
        action = self._action(elem.tag, elem.VR)
        if action is Action.REMOVE or (action is Action.UID and elem.VR != "UI"):
            del ds[elem.tag]
        elif elem.VR == "SQ":
            if action is Action.KEEP:
                self._clean_items(elem, shift, warnings)
            else:
                # A dummy item would depend on the IOD, so D (like Z) leaves the sequence empty.
                elem.value = Sequence()
        elif action is None:
            if shift is not None and elem.VR != "TM":
                self._shift(elem, shift, warnings)
        elif elem.VR == "UI" and action in (Action.UID, Action.DUMMY):
            elem.value = self._new_uids(elem.value)
        elif action is Action.ZERO:
            elem.value = elem.empty_value
        elif action is Action.DUMMY:
            elem.value = _DUMMY_VALUES.get(elem.VR[:2], _DUMMY_TEXT)  # "OB or OW" -> OB

    def _new_uids(self, value: object) -> object:
        if isinstance(value, MultiValue | list):
            return [self._new_uid_unless_standard(str(uid)) for uid in value]
        return self._new_uid_unless_standard(str(value or ""))

    def _new_uid_unless_standard(self, uid: str) -> str:
        # UIDs under the DICOM root are defined by the standard (classes, syntaxes, well-known frames).
        return uid if uid.startswith(DICOM_UID_ROOT) else self.new_uid(uid)

    def _shift(self, elem: DataElement, shift: timedelta, warnings: list[str]) -> None:
        values = list(elem.value) if isinstance(elem.value, MultiValue) else [elem.value]
        shifted = [_shift_value(str(value or ""), elem.VR, shift) for value in values]
        if any(value is None for value in shifted):
            elem.value = elem.empty_value
            warnings.append(
                f"{_describe(elem)} is not a readable date, so it was emptied instead of shifted."
            )
        else:
            elem.value = shifted if len(shifted) > 1 else shifted[0]

    def _mark(self, ds: Dataset, patient_key: str) -> None:
        """The attributes that say how this instance was de-identified (PS3.15 E.1.1)."""
        pseudonym = self.pseudonym(patient_key)
        ds.PatientID = pseudonym
        ds.PatientName = f"{pseudonym}^"  # family-name component only (PS3.5 6.2.1.2)
        codes = [_BASIC_CODE]
        if self.options.retain_longitudinal_dates:
            codes.append(_DATES_CODE)
        if self.options.retain_patient_characteristics:
            codes.append(_PATIENT_CODE)
        if self.options.keeps_private:
            codes.append(_PRIVATE_CODE)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = [f"Sahay {__version__} PS3.15 E.1-1", *(meaning for _, meaning in codes)]
        ds.DeidentificationMethodCodeSequence = Sequence(
            _code_item(value, meaning) for value, meaning in codes
        )
        ds.LongitudinalTemporalInformationModified = (
            "MODIFIED" if self.options.retain_longitudinal_dates else "REMOVED"
        )

    def _file_meta(self, original: Dataset, out: Dataset) -> FileMetaDataset:
        """A fresh file meta: the old one may name the sending station; keep only what is needed."""
        old = getattr(original, "file_meta", None) or FileMetaDataset()
        meta = FileMetaDataset()
        sop_class = out.get("SOPClassUID") or old.get("MediaStorageSOPClassUID")
        sop_instance = out.get("SOPInstanceUID") or self.new_uid(
            str(old.get("MediaStorageSOPInstanceUID", ""))
        )
        if sop_class:
            meta.MediaStorageSOPClassUID = UID(sop_class)
        if sop_instance:
            meta.MediaStorageSOPInstanceUID = UID(sop_instance)
        meta.TransferSyntaxUID = UID(old.get("TransferSyntaxUID") or _transfer_syntax_read_with(original))
        return meta


def deidentify_path(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    options: DeidOptions | None = None,
    *,
    secret: bytes | None = None,
    mapping_out: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DeidReport:
    """De-identify a DICOM file, or every DICOM file under a folder, into ``dst``.

    ``progress`` hears (files done, files in all) as a folder is worked through.

    A folder is searched recursively and its layout mirrored under ``dst``; files that are not
    DICOM are skipped and DICOM files that cannot be de-identified are refused, each with its
    reason in the report. A single file is written to ``dst`` (or into it, if it is a folder) and
    any problem raises BadInput. One secret serves the whole call, so UIDs stay consistent across
    files. The original-to-new mapping is written only to ``mapping_out``, and only if given.
    """
    src, dst = Path(src), Path(dst)
    mapping = None if mapping_out is None else Path(mapping_out)
    deidentifier = Deidentifier(options, secret)
    if src.is_dir():
        report = _deidentify_folder(deidentifier, src, dst, mapping, progress)
    elif src.is_file():
        report = _deidentify_file(deidentifier, src, dst, mapping)
    else:
        raise BadInput(f"{src} does not exist (or is not a file or folder).")
    if mapping is not None:
        deidentifier.write_mapping(mapping)
    return report


def load_secret(path: str | os.PathLike[str]) -> bytes:
    """The secret in ``path`` (surrounding whitespace ignored), which keys new UIDs and pseudonyms."""
    path = Path(path)
    try:
        secret = path.read_bytes().strip()
    except FileNotFoundError:
        raise BadInput(
            f"secret file {path} does not exist; create one with "
            f"`head -c 32 /dev/urandom | base64 > {path}` and keep it private."
        ) from None
    except OSError as exc:
        raise BadInput(f"secret file {path} cannot be read ({describe_error(exc)}).") from exc
    if len(secret) < MIN_SECRET_BYTES:
        raise BadInput(f"secret file {path} holds {len(secret)} bytes; it needs at least {MIN_SECRET_BYTES}.")
    return secret


def parse_tag(text: str) -> int:
    """A tag written as ``00091001``, ``0009,1001``, ``(0009,1001)`` or ``0x00091001``."""
    digits = text.strip().strip("()").replace(",", "").replace(" ", "").lower().removeprefix("0x")
    if len(digits) != 8 or any(char not in "0123456789abcdef" for char in digits):
        raise BadInput(
            f"{text!r} is not a DICOM tag; write it as 8 hex digits, e.g. 00091001 or (0009,1001)."
        )
    return int(digits, 16)


def _deidentify_file(deidentifier: Deidentifier, src: Path, dst: Path, mapping: Path | None) -> DeidReport:
    if dst.is_dir():
        dst = dst / src.name
    if _same(dst, src):
        raise BadInput(f"{dst} is the input file; give another output path (the input is never changed).")
    if mapping is not None and (_same(mapping, src) or _same(mapping, dst)):
        raise BadInput(f"{mapping} is the input or output file; give the mapping its own path.")
    warnings = deidentifier.file(src, dst)
    return DeidReport(written=[dst], warnings={src.name: warnings} if warnings else {})


def _deidentify_folder(
    deidentifier: Deidentifier,
    src: Path,
    dst: Path,
    mapping: Path | None,
    progress: Callable[[int, int], None] | None = None,
) -> DeidReport:
    if dst.exists() and not dst.is_dir():
        raise BadInput(f"{dst} is a file, but the input {src} is a folder; give an output folder.")
    if _within(dst, src) or _within(src, dst):
        raise BadInput(
            f"the output {dst} and the input {src} overlap; give an output folder outside the input."
        )
    if mapping is not None and _within(mapping, src):
        raise BadInput(f"{mapping} is inside the input folder {src}; write the mapping elsewhere.")
    report = DeidReport()
    files = list(_files(src))
    for done, path in enumerate(files):
        if progress is not None:
            progress(done, len(files))
        relative = path.relative_to(src)
        key = relative.as_posix()
        try:
            if path.name.upper() == "DICOMDIR":
                report.skipped[key] = "a DICOMDIR index (not copied; rebuild it from the output)"
                continue
            if not looks_like_dicom(_head(path)):
                report.skipped[key] = "not a DICOM file"
                continue
            warnings = deidentifier._write(_read(path), str(path), dst / relative)
        except BadInput as exc:
            report.refused[key] = str(exc)
            continue
        report.written.append(dst / relative)
        if warnings:
            report.warnings[key] = warnings
    if progress is not None:
        progress(len(files), len(files))
    return report


def _files(root: Path) -> Iterator[Path]:
    for folder, subfolders, names in os.walk(root):
        subfolders.sort()
        for name in sorted(names):
            yield Path(folder) / name


def _head(path: Path) -> bytes:
    # Enough for the preamble and a bare dataset's first element.
    try:
        with open(path, "rb") as handle:
            return handle.read(4096)
    except OSError as exc:
        raise BadInput(f"{path} cannot be read ({describe_error(exc)}).") from exc


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path} cannot be read ({describe_error(exc)}).") from exc


def _parse(data: bytes, name: str) -> Dataset:
    # A deflated dataset may inflate to no more than the configured file limit (SAHAY_MAX_FILE_MB).
    return parse_dicom(data, name, max_inflated_bytes=get_settings().max_file_bytes)


def _burned_in_risk(ds: Dataset) -> str | None:
    """What makes an image likely to carry burned-in text: a Secondary Capture, or its modality."""
    if str(ds.get("SOPClassUID", "")) in _SECONDARY_CAPTURE:
        return "Secondary Capture image"
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in BURNED_IN_MODALITIES:
        return (
            f"{BURNED_IN_MODALITIES[modality]} ({modality}) image, a modality whose devices often "
            "write patient details into the pixels,"
        )
    return None


def _check_identifiable(ds: Dataset, meta: Dataset, name: str) -> str | None:
    """Refuse a file that cannot be written back as a DICOM file; a warning if it has no file meta.

    A file without file meta information (no 128-byte preamble and "DICM", or no group 0002) is
    read with an inferred transfer syntax; its output gets a new file meta, which needs the SOP
    Class and Instance UIDs that the file meta would otherwise have given.
    """
    has_meta = bool(meta.get("TransferSyntaxUID"))
    missing = [
        f"{label} ({tag})"
        for label, tag, here, in_meta in (
            ("SOP Class UID", "0008,0016", "SOPClassUID", "MediaStorageSOPClassUID"),
            ("SOP Instance UID", "0008,0018", "SOPInstanceUID", "MediaStorageSOPInstanceUID"),
        )
        if not str(ds.get(here, "") or "").strip() and not str(meta.get(in_meta, "") or "").strip()
    ]
    if missing:
        where = (
            "it has no file meta information (no 128-byte preamble and DICM prefix, or no group 0002)"
            if not has_meta
            else "its file meta information does not name them either"
        )
        raise BadInput(
            f"{name} has no {' and no '.join(missing)}, and {where}, so it cannot be written as a "
            "de-identified DICOM file. Export it again from the archive or device as a standard DICOM "
            "file (PS3.10, with file meta information)."
        )
    if has_meta:
        return None
    syntax = _transfer_syntax_read_with(ds)
    return (
        "no file meta information (no 128-byte preamble and DICM prefix, or no group 0002): the "
        f"dataset was read as {syntax.name}, and the output was given a new file meta."
    )


def _patient_key(ds: Dataset) -> str:
    """Whom the instance belongs to. Without a Patient ID, each study is its own patient."""
    patient_id = str(ds.get("PatientID", "") or "").strip()
    if patient_id:
        return patient_id
    return "study:" + str(ds.get("StudyInstanceUID", "") or ds.get("SOPInstanceUID", "")).strip()


def _shift_value(text: str, vr: str, shift: timedelta) -> str | None:
    text = text.strip()
    if not text:
        return text
    if len(text) < 8 or not text[:8].isdigit() or (vr == "DA" and len(text) != 8):
        return None
    try:
        moved = date(int(text[:4]), int(text[4:6]), int(text[6:8])) - shift
    except (ValueError, OverflowError):
        return None
    return f"{moved.year:04d}{moved.month:02d}{moved.day:02d}{text[8:]}"


def _code_item(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def _transfer_syntax_read_with(ds: Dataset) -> UID:
    implicit_vr, little_endian = ds.original_encoding
    if implicit_vr:
        return ImplicitVRLittleEndian
    return ExplicitVRBigEndian if little_endian is False else ExplicitVRLittleEndian


def _creator_tag(tag: BaseTag) -> BaseTag:
    return Tag(tag.group, tag.element >> 8)


def _is_overlay_or_curve(group: int) -> bool:
    return group & 0xFF00 in (0x5000, 0x6000) and group % 2 == 0


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _within(inner: Path, outer: Path) -> bool:
    inner, outer = inner.resolve(), outer.resolve()
    return inner == outer or outer in inner.parents


def _describe(elem: DataElement) -> str:
    return f"{elem.name} {_tag_text(elem.tag)}"


def _tag_text(tag: BaseTag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"
